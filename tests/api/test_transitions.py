"""PATCH: every operator transition of the state machine; every other one is 409."""

from __future__ import annotations

import itertools

import pytest

from herald.states import OPERATOR_TRANSITIONS, TaskStatus
from tests.api.conftest import TEXT_TASK, Api

OPERATOR = "tasks:manage tasks:read"


async def _task_in(api: Api, status: TaskStatus) -> int:
    resp = await api.post_task(TEXT_TASK, key=f"t-{status}")
    task_id: int = resp.json()["id"]
    await api.pool.execute(
        "UPDATE tasks SET status = $2, attempt = 1, lease_owner = 'w1',"
        " next_attempt_at = now() + interval '1 hour' WHERE id = $1",
        task_id,
        status.value,
    )
    api.queue.calls.clear()
    return task_id


@pytest.mark.parametrize(("frm", "to"), list(OPERATOR_TRANSITIONS))
async def test_allowed_transition_applies_with_audit_event(
    api: Api, frm: TaskStatus, to: TaskStatus
) -> None:
    task_id = await _task_in(api, frm)
    body: dict[str, object] = {"status": to.value, "reason": "checked with the recipient"}
    if to is TaskStatus.DELIVERED:
        body["telegram_message_id"] = 777
    resp = await api.client.patch(
        f"/api/tasks/{task_id}", json=body, headers=api.auth("alice", OPERATOR)
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == to.value
    row = await api.pool.fetchrow("SELECT * FROM tasks WHERE id = $1", task_id)
    assert row["status"] == to.value
    event = await api.pool.fetchrow(
        "SELECT * FROM task_events WHERE task_id = $1 ORDER BY id DESC LIMIT 1", task_id
    )
    assert (event["actor"], event["from_status"], event["to_status"]) == (
        "operator:alice",
        frm.value,
        to.value,
    )
    assert event["reason"] == "checked with the recipient"
    if to is TaskStatus.PENDING:  # resend: due now, handed to the workers after commit
        assert row["next_attempt_at"] <= await api.pool.fetchval("SELECT now()")
        assert row["lease_owner"] is None
        assert api.queue.ids == [task_id]
    else:
        assert api.queue.calls == []
    if to is TaskStatus.DELIVERED:
        assert row["telegram_message_id"] == 777


REFUSED = [
    (frm, to)
    for frm, to in itertools.product(TaskStatus, TaskStatus)
    if (frm, to) not in OPERATOR_TRANSITIONS
    and to in (TaskStatus.PENDING, TaskStatus.CANCELLED, TaskStatus.DELIVERED, TaskStatus.FAILED)
]


@pytest.mark.parametrize(("frm", "to"), REFUSED)
async def test_other_transitions_are_409_and_change_nothing(
    api: Api, frm: TaskStatus, to: TaskStatus
) -> None:
    task_id = await _task_in(api, frm)
    before = await api.pool.fetchrow("SELECT * FROM tasks WHERE id = $1", task_id)
    resp = await api.client.patch(
        f"/api/tasks/{task_id}", json={"status": to.value}, headers=api.auth("alice", OPERATOR)
    )
    assert resp.status_code == 409, resp.text
    error = resp.json()["error"]
    assert error["code"] == "transition_not_allowed"
    assert (error["details"]["from"], error["details"]["to"]) == (frm.value, to.value)
    assert await api.pool.fetchrow("SELECT * FROM tasks WHERE id = $1", task_id) == before
    assert await api.count("task_events") == 1
    assert api.queue.calls == []


async def test_patch_bad_bodies(api: Api) -> None:
    task_id = await _task_in(api, TaskStatus.UNCERTAIN)
    headers = api.auth("alice", OPERATOR)
    for body in ({"status": "sending"}, {}, {"status": "failed", "telegram_message_id": 5}):
        resp = await api.client.patch(f"/api/tasks/{task_id}", json=body, headers=headers)
        assert resp.status_code == 422, body
    resp = await api.client.patch("/api/tasks/999", json={"status": "failed"}, headers=headers)
    assert resp.status_code == 404
    assert await api.count("task_events") == 1


async def test_delete_cancels_pending_only(api: Api) -> None:
    resp = await api.post_task(TEXT_TASK, key="d")
    task_id = resp.json()["id"]
    resp = await api.client.delete(f"/api/tasks/{task_id}", headers=api.auth())
    assert resp.status_code == 200
    assert resp.json()["status"] == "cancelled"
    again = await api.client.delete(f"/api/tasks/{task_id}", headers=api.auth())
    assert again.status_code == 409
    for status in (TaskStatus.SENDING, TaskStatus.DELIVERED, TaskStatus.UNCERTAIN):
        other = await _task_in(api, status)
        resp = await api.client.delete(f"/api/tasks/{other}", headers=api.auth("ops", OPERATOR))
        assert resp.status_code == 409, status
        assert await api.pool.fetchval("SELECT status FROM tasks WHERE id = $1", other) == status
    # An operator may cancel any client's pending task.
    resp = await api.post_task(TEXT_TASK, key="d2", sub="someone")
    resp = await api.client.delete(
        f"/api/tasks/{resp.json()['id']}", headers=api.auth("ops", OPERATOR)
    )
    assert resp.status_code == 200
    event = await api.pool.fetchrow("SELECT actor FROM task_events ORDER BY id DESC LIMIT 1")
    assert event["actor"] == "operator:ops"
