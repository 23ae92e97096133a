"""Which transition a producer hears of, as which event; a recipient's events; the states
of an outbox row.

A task's events: the trigger of migration 0006 decides the same as `event_type` in SQL
for every audit event written; `tests/callbacks/test_outbox.py` checks the two against
every row of the transition table (`herald.states`). A recipient's events come from
Telegram's updates (herald.updates.take; SQL in herald.db.updates and
herald.db.recipients).
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

# A recipient's events, for a client whose endpoint has `updates` (herald.updates.take
# writes them in the transaction that stores the Telegram update they come from).
MESSAGE_RECEIVED = "message.received"  # a message from the recipient's chat, no command of ours
LINKED = "recipient.linked"  # /start <code>: bound to the chat
SUBSCRIBED = "recipient.subscribed"  # /start after /stop
UNSUBSCRIBED = "recipient.unsubscribed"  # /stop
BLOCKED = "recipient.blocked"  # my_chat_member: the bot blocked, kicked, or left
UNBLOCKED = "recipient.unblocked"  # my_chat_member: the bot is back
RECIPIENT_EVENT_TYPES = (MESSAGE_RECEIVED, LINKED, SUBSCRIBED, UNSUBSCRIBED, BLOCKED, UNBLOCKED)


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
