"""Which transition a producer hears of, as which event, and the states of its outbox row.

The trigger of migration 0006 decides the same in SQL for every audit event written;
`tests/callbacks/test_outbox.py` checks it against `event_type` for every row of the
transition table (`herald.states`).
"""

from __future__ import annotations

from enum import StrEnum

from herald.states import Actor, Edge, TaskStatus

DELIVERED = "task.delivered"
FAILED = "task.failed"
UNCERTAIN = "task.uncertain"
CANCELLED = "task.cancelled"
EXPIRED = "task.expired"
RESENT = "task.resent"
RESOLVED = "task.resolved"
EVENT_TYPES = (DELIVERED, FAILED, UNCERTAIN, CANCELLED, EXPIRED, RESENT, RESOLVED)


class CallbackStatus(StrEnum):
    """An outbox event's state: pending (due at next_attempt_at), sending (claimed under a
    lease until next_attempt_at), delivered (a 2xx), failed (the retry schedule ran out)."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


_BY_STATUS = {
    TaskStatus.DELIVERED: DELIVERED,
    TaskStatus.FAILED: FAILED,
    TaskStatus.UNCERTAIN: UNCERTAIN,
    TaskStatus.CANCELLED: CANCELLED,
}


def event_type(edge: Edge) -> str | None:
    """The event `edge` sends, None for one no producer hears of (created, claimed, a
    retry, a lease expiry back to pending)."""
    if edge.to is TaskStatus.PENDING:
        resent = edge.frm in (TaskStatus.FAILED, TaskStatus.UNCERTAIN)
        return RESENT if resent else None
    if edge.frm is TaskStatus.UNCERTAIN and edge.actor is Actor.OPERATOR:
        return RESOLVED
    if edge.to is TaskStatus.FAILED and edge.reason == "expired":
        return EXPIRED
    return _BY_STATUS.get(edge.to)
