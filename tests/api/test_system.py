"""Health, readiness, metrics, the OpenAPI document, and `herald api` start-up."""

from __future__ import annotations

from herald.api.app import create_app
from tests.api.conftest import TEXT_TASK, Api, RecordingQueue, running
from tests.conftest import make_settings


async def test_health_and_ready(api: Api) -> None:
    assert (await api.client.get("/health")).json() == {"status": "ok"}
    resp = await api.client.get("/ready")
    assert resp.status_code == 200
    assert resp.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_ready_is_503_when_redis_is_unreachable(database_url: str) -> None:
    settings = make_settings(database_url, redis_url="redis://127.0.0.1:1/0")
    async with running(create_app(settings, queue=RecordingQueue())) as client:
        resp = await client.get("/ready")
    assert resp.status_code == 503
    error = resp.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"]["postgres"] == "ok"
    assert error["details"]["redis"].startswith("error")


async def test_metrics_count_intake(api: Api) -> None:
    def value(text: str, name: str) -> float:
        line = next(ln for ln in text.splitlines() if ln.startswith(name + " "))
        return float(line.split()[1])

    before = (await api.client.get("/metrics")).text
    await api.post_task(TEXT_TASK, key="m1")
    await api.post_task(TEXT_TASK, key="m1")
    await api.post_task({"chat_id": 1, "text": ""}, key="m2")
    after = (await api.client.get("/metrics")).text
    assert (
        value(after, "herald_tasks_created_total")
        == value(before, "herald_tasks_created_total") + 1
    )
    assert (
        value(after, "herald_tasks_replayed_total")
        == value(before, "herald_tasks_replayed_total") + 1
    )
    # herald_tasks is refreshed in the background: tests/api/test_metrics_state.py.
    assert 'herald_intake_refused_total{reason="validation_error"}' in after


async def test_openapi_documents_bodies_and_security(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    create = doc["paths"]["/api/tasks"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskIn"
    }
    assert create["parameters"][0]["name"] == "Idempotency-Key"
    assert create["security"] == [{"bearer": []}]
    for name in ("TaskIn", "BatchRequest", "TaskPatch", "Button", "TaskOut", "ErrorEnvelope"):
        assert name in doc["components"]["schemas"], name
    assert "security" not in doc["paths"]["/health"]["get"]


async def test_unknown_route_and_method_use_the_envelope(api: Api) -> None:
    resp = await api.client.get("/nope")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
    resp = await api.client.put("/api/tasks", headers=api.auth())
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"
