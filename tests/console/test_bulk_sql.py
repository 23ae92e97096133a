"""A bulk move changes a task exactly as the API's PATCH does (`db.tasks.transition`)."""

from __future__ import annotations

from typing import Any

from herald.console.actions import ACTIONS
from herald.db import console as console_db
from herald.states import TaskStatus
from tests.console.conftest import Console

_SAME = (
    "status",
    "attempt",
    "failures",
    "lease_owner",
    "lease_expires_at",
    "last_error",
    "telegram_message_id",
)


def _row(console: Console, task_id: int) -> dict[str, Any]:
    row = console.run(console.pool.fetchrow("SELECT * FROM tasks WHERE id = $1", task_id))
    return dict(row)


def test_bulk_and_patch_make_the_same_task(console: Console) -> None:
    console.reset()
    cases = [
        (TaskStatus.FAILED, "resend"),
        (TaskStatus.UNCERTAIN, "resend"),
        (TaskStatus.UNCERTAIN, "resolve-failed"),
        (TaskStatus.UNCERTAIN, "resolve-delivered"),
        (TaskStatus.PENDING, "cancel"),
    ]
    # All made first: a resent task is due, and the next claim would take it.
    pairs = [
        (console.create(key=f"api-{i}", status=s), console.create(key=f"bulk-{i}", status=s))
        for i, (s, _) in enumerate(cases)
    ]
    for (by_api, by_bulk), (_, name) in zip(pairs, cases, strict=True):
        action = ACTIONS[name]
        response = console.http.patch(
            f"/api/tasks/{by_api}",
            json={"status": action.target.value, "reason": "why"},
            headers=console.api("alice", "tasks:manage"),
        )
        assert response.status_code == 200, response.text
        move = console_db.BulkMove(
            action.target, action.audit_name, "operator:alice", "why", {"bulk": "test"}
        )
        result = console.run(console_db.move_batch(console.pool, move, ids=[by_bulk]))
        assert result.moved == [by_bulk]
        api_row, bulk_row = _row(console, by_api), _row(console, by_bulk)
        assert {k: api_row[k] for k in _SAME} == {k: bulk_row[k] for k in _SAME}
        for column in ("next_attempt_at", "enqueued_at"):
            # Both "now" for a resend (at their own moments), both unchanged otherwise.
            assert (api_row[column] == api_row["updated_at"]) == (
                bulk_row[column] == bulk_row["updated_at"]
            ), column
        api_event, bulk_event = console.events(by_api)[-1], console.events(by_bulk)[-1]
        for key in ("actor", "from_status", "to_status", "attempt", "reason"):
            assert api_event[key] == bulk_event[key], key
        assert bulk_event["details"] == {"bulk": "test"}


def test_a_bulk_move_skips_what_the_operator_table_refuses(console: Console) -> None:
    console.reset()
    delivered = console.create(key="d", status=TaskStatus.DELIVERED)
    failed = console.create(key="f", status=TaskStatus.FAILED)
    move = console_db.BulkMove(TaskStatus.PENDING, "resend", "operator:alice", None, {})
    result = console.run(console_db.move_batch(console.pool, move, ids=[delivered, failed]))
    assert (result.seen, result.moved) == (2, [failed])
    assert console.get_task(delivered)["status"] == "delivered"
    assert [e["to_status"] for e in console.events(delivered)] == [
        "pending",
        "sending",
        "delivered",
    ]
