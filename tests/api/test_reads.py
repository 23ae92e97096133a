"""GET one task, list with filters and cursor pagination, the audit trail; visibility."""

from __future__ import annotations

import asyncio
from typing import Any

from herald.api.views import encode_cursor
from tests.api.conftest import TEXT_TASK, Api


async def _create(api: Api, n: int, sub: str = "billing", chat_id: Any = 42) -> list[int]:
    ids = []
    for i in range(n):
        resp = await api.post_task(
            {"chat_id": chat_id, "text": f"t{i}"}, key=f"{sub}-{chat_id}-{i}", sub=sub
        )
        ids.append(resp.json()["id"])
    return ids


async def test_get_own_task_and_404_for_another_clients(api: Api) -> None:
    [mine] = await _create(api, 1, sub="alpha")
    [theirs] = await _create(api, 1, sub="beta")
    resp = await api.client.get(f"/api/tasks/{mine}", headers=api.auth("alpha"))
    assert resp.status_code == 200
    assert resp.json()["text"] == "t0"
    for path in (f"/api/tasks/{theirs}", f"/api/tasks/{theirs}/events"):
        resp = await api.client.get(path, headers=api.auth("alpha"))
        assert resp.status_code == 404, path
        assert resp.json()["error"]["code"] == "not_found"
    resp = await api.client.delete(f"/api/tasks/{theirs}", headers=api.auth("alpha"))
    assert resp.status_code == 404
    # A reader sees every client's task.
    resp = await api.client.get(f"/api/tasks/{theirs}", headers=api.auth("ops", "tasks:read"))
    assert resp.status_code == 200


async def test_bad_ids_are_4xx(api: Api) -> None:
    for bad in ("0", "-1", "abc", str(2**63), "1.5", "99999"):
        resp = await api.client.get(f"/api/tasks/{bad}", headers=api.auth())
        assert resp.status_code in (404, 422), bad
        assert "error" in resp.json()


async def test_list_filters(api: Api) -> None:
    await _create(api, 2, chat_id=1)
    chat2 = await _create(api, 3, chat_id=2)
    await _create(api, 2, sub="other", chat_id=2)
    await api.pool.execute("UPDATE tasks SET status = 'failed' WHERE id = $1", chat2[0])

    async def ids(query: str, sub: str = "billing", scopes: str = "tasks:write") -> list[int]:
        resp = await api.client.get(f"/api/tasks?{query}", headers=api.auth(sub, scopes))
        assert resp.status_code == 200, resp.text
        return [t["id"] for t in resp.json()["items"]]

    assert len(await ids("")) == 5  # own tasks only
    assert len(await ids("", "ops", "tasks:read")) == 7
    assert await ids("chat_id=2") == sorted(chat2, reverse=True)
    assert await ids("status=failed") == [chat2[0]]
    assert await ids("status=pending&chat_id=2") == sorted(chat2[1:], reverse=True)
    assert await ids("created_after=2099-01-01T00:00:00Z") == []
    assert len(await ids("created_before=2099-01-01T00:00:00Z")) == 5
    for bad in (
        "status=lost",
        "limit=0",
        "limit=501",
        "created_after=yesterday",
        "chat_id=general",
    ):
        resp = await api.client.get(f"/api/tasks?{bad}", headers=api.auth())
        assert resp.status_code == 422, bad


async def test_pagination_returns_each_task_once_while_inserting(api: Api) -> None:
    existing = set(await _create(api, 25))
    seen: list[int] = []
    cursor = None
    writer = 0

    async def insert_more() -> None:
        nonlocal writer
        for _ in range(3):
            writer += 1
            await api.post_task(TEXT_TASK, key=f"new-{writer}")

    while True:
        query = "limit=4" + (f"&cursor={cursor}" if cursor else "")
        page, _ = await asyncio.gather(
            api.client.get(f"/api/tasks?{query}", headers=api.auth()), insert_more()
        )
        body = page.json()
        seen.extend(t["id"] for t in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))  # never twice
    assert existing <= set(seen)  # every task present at the start
    assert seen == sorted(seen, reverse=True)  # stable order


async def test_forged_cursors_are_400(api: Api) -> None:
    for cursor in ("!!!", "djI6MTA", encode_cursor(5)[:-1] + "*", "djE6LTE", "djE6YWJj", "x" * 65):
        resp = await api.client.get(f"/api/tasks?cursor={cursor}", headers=api.auth())
        assert resp.status_code in (400, 422), cursor
        assert "error" in resp.json()
    # A well-formed cursor is only a position: it cannot reveal other clients' tasks.
    await _create(api, 1, sub="other")
    resp = await api.client.get(f"/api/tasks?cursor={encode_cursor(2**62)}", headers=api.auth())
    assert resp.json()["items"] == []


async def test_events_list_the_audit_trail(api: Api) -> None:
    [task_id] = await _create(api, 1)
    await api.client.delete(f"/api/tasks/{task_id}", headers=api.auth())
    resp = await api.client.get(f"/api/tasks/{task_id}/events", headers=api.auth())
    assert resp.status_code == 200
    events = resp.json()["items"]
    assert [(e["actor"], e["from_status"], e["to_status"], e["reason"]) for e in events] == [
        ("client:billing", None, "pending", "created"),
        ("client:billing", "pending", "cancelled", "cancel"),
    ]
