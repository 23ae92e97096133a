"""Inputs schemathesis found that once broke the gateway, kept as plain regression tests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

BIG_INT_TASK = {"chat_id": 42, "text": "hi", "metadata": {"n": -40702051926409009707352064}}
NUL_TASK = {"chat_id": 42, "text": "a\u0000b"}
NUL_IN_METADATA = {"chat_id": 42, "text": "hi", "metadata": {"k\u0000": 1}}


def _post(live_api: str, token: str, path: str, task: dict[str, Any], key: str) -> httpx.Response:
    body = task if path == "/api/tasks" else {"items": [{**task, "idempotency_key": key}]}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    return httpx.post(f"{live_api}{path}", json=body, headers=headers)


def _stored_keys(live_api: str, token: str) -> set[str]:
    headers = {"Authorization": f"Bearer {token}"}
    items = httpx.get(f"{live_api}/api/tasks", headers=headers).json()["items"]
    return {t["idempotency_key"] for t in items}


@pytest.mark.parametrize("path", ["/api/tasks", "/api/tasks/batch"])
def test_metadata_with_an_integer_beyond_64_bits_is_refused(
    live_api: str, all_scopes_token: str, path: str
) -> None:
    key = f"big-int{path.replace('/', '-')}"
    response = _post(live_api, all_scopes_token, path, BIG_INT_TASK, key)
    if path == "/api/tasks":
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "validation_error"
    else:  # a batch answers per item
        assert response.status_code == 200
        assert response.json()["results"][0]["result"] == "error"
    assert key not in _stored_keys(live_api, all_scopes_token)


@pytest.mark.parametrize("task", [NUL_TASK, NUL_IN_METADATA], ids=["text", "metadata"])
@pytest.mark.parametrize("path", ["/api/tasks", "/api/tasks/batch"])
def test_a_nul_character_is_refused_with_422(
    live_api: str, all_scopes_token: str, path: str, task: dict[str, Any]
) -> None:
    key = f"nul{path.replace('/', '-')}-{len(task)}"
    response = _post(live_api, all_scopes_token, path, task, key)
    if path == "/api/tasks":
        assert response.status_code == 422
        assert "NUL" in str(response.json()["error"]["details"])
    else:  # a batch answers per item
        assert response.status_code == 200
        assert response.json()["results"][0]["result"] == "error"
    assert key not in _stored_keys(live_api, all_scopes_token)


def test_metrics_are_documented_as_text(live_api: str) -> None:
    doc = httpx.get(f"{live_api}/openapi.json").json()
    content = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]
    assert httpx.get(f"{live_api}/metrics").headers["content-type"].startswith("text/plain")
