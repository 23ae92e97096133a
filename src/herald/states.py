"""Task states and every transition between them: the one table the code and the docs follow.

Each row of `TRANSITIONS` is one way a task changes status: from, to, who (the actor's
kind), the step that makes it (`action`), the reason its audit event carries, and why.
The statements that move tasks render their statuses and reasons from these rows (claim,
record, the sweeper, intake, the operator's PATCH and DELETE); the operator's request
schema and the routes take their allowed values from here; `tests/delivery/test_states.py`
drives every statement and checks that the events it writes are rows of this table, and
that docs/architecture.md ("Task states") shows the same table. Retention deletes tasks:
not a transition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNCERTAIN = "uncertain"


class DeliveryMode(StrEnum):
    EXACTLY_ONCE = "exactly_once"
    # An ambiguous outcome is retried: the recipient may get the message twice.
    AT_LEAST_ONCE = "at_least_once"


class Actor(StrEnum):
    """Who moves a task. An audit event's actor is `client:NAME`, `operator:NAME`,
    `worker:ID` or `sweeper`: the part before the colon."""

    CLIENT = "client"
    WORKER = "worker"
    SWEEPER = "sweeper"
    OPERATOR = "operator"

    @classmethod
    def of(cls, actor: str) -> Actor:
        return cls(actor.partition(":")[0])


FINAL_STATUSES = frozenset({TaskStatus.DELIVERED, TaskStatus.FAILED, TaskStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class Edge:
    """One transition. `frm` None: the task is created."""

    frm: TaskStatus | None
    to: TaskStatus
    actor: Actor
    action: str  # the step or request that makes it
    reason: str  # its audit event's reason (an operator may give their own)
    why: str


_S = TaskStatus
_A = Actor

CREATED = Edge(
    None, _S.PENDING, _A.CLIENT, "intake", "created",
    "accepted by POST /api/tasks (or as an item of /api/tasks/batch)",
)  # fmt: skip
REFUSED_BLOCKED = Edge(
    None, _S.FAILED, _A.CLIENT, "intake", "recipient_blocked",
    "accepted for a chat that blocked the bot or removed it: failed at once, never sent",
)  # fmt: skip
REFUSED_UNSUBSCRIBED = Edge(
    None, _S.FAILED, _A.CLIENT, "intake", "recipient_unsubscribed",
    "accepted for a recipient who sent /stop to this producer: failed at once, never sent",
)  # fmt: skip
CLAIMED = Edge(
    _S.PENDING, _S.SENDING, _A.WORKER, "claim", "claimed",
    "due: a worker takes it under a lease, attempt + 1, and commits before the send",
)  # fmt: skip
EXPIRED_UNSENT = Edge(
    _S.PENDING, _S.FAILED, _A.WORKER, "claim", "expired",
    "due after its expires_at: failed at the claim, never sent",
)  # fmt: skip
DELIVERED = Edge(
    _S.SENDING, _S.DELIVERED, _A.WORKER, "record", "delivered",
    "Telegram answered with the message (its message_id is stored)",
)  # fmt: skip
RETRY = Edge(
    _S.SENDING, _S.PENDING, _A.WORKER, "record", "retry",
    "certainly not sent (a 429, another 4xx, no connection), or ambiguous for an"
    " at-least-once task: due again after retry_after or a backoff",
)  # fmt: skip
MIGRATED = Edge(
    _S.SENDING, _S.PENDING, _A.WORKER, "record", "migrated",
    "the group became a supergroup: due at once, sent to the new chat id",
)  # fmt: skip
REJECTED = Edge(
    _S.SENDING, _S.FAILED, _A.WORKER, "record", "rejected",
    "refused for good (400, 403, 413)",
)  # fmt: skip
EXHAUSTED = Edge(
    _S.SENDING, _S.FAILED, _A.WORKER, "record", "attempts exhausted",
    "its failures reached max_attempts",
)  # fmt: skip
EXPIRED = Edge(
    _S.SENDING, _S.FAILED, _A.WORKER, "record", "expired",
    "its next try would come after expires_at",
)  # fmt: skip
AMBIGUOUS = Edge(
    _S.SENDING, _S.UNCERTAIN, _A.WORKER, "record", "ambiguous",
    "the request may have reached Telegram (5xx, timeout, dropped connection, an unreadable"
    " answer): held for an operator",
)  # fmt: skip
LATE_DELIVERED = Edge(
    _S.UNCERTAIN, _S.DELIVERED, _A.WORKER, "record", "delivered",
    "a success of the same attempt that came after the sweeper gave its lease up",
)  # fmt: skip
LEASE_LOST = Edge(
    _S.SENDING, _S.UNCERTAIN, _A.SWEEPER, "lease expiry", "lease expired",
    "its lease ran out with no outcome recorded: the send may have happened",
)  # fmt: skip
LEASE_UNSENT = Edge(
    _S.SENDING, _S.PENDING, _A.SWEEPER, "lease expiry", "lease expired before the send",
    "its lease ran out with the send gate still closed: nothing was sent",
)  # fmt: skip
LEASE_RETRY = Edge(
    _S.SENDING, _S.PENDING, _A.SWEEPER, "lease expiry", "lease expired",
    "an at-least-once task's lease ran out: one more failure, due again at once",
)  # fmt: skip
LEASE_EXHAUSTED = Edge(
    _S.SENDING, _S.FAILED, _A.SWEEPER, "lease expiry", "lease expired",
    "an at-least-once task's lease ran out and its failures reach max_attempts",
)  # fmt: skip
CLIENT_CANCEL = Edge(
    _S.PENDING, _S.CANCELLED, _A.CLIENT, "cancel", "cancel",
    "DELETE by its producer before a worker claimed it",
)  # fmt: skip
OPERATOR_CANCEL = Edge(
    _S.PENDING, _S.CANCELLED, _A.OPERATOR, "cancel", "cancel",
    "DELETE, or PATCH status cancelled, by an operator",
)  # fmt: skip
RESEND_FAILED = Edge(
    _S.FAILED, _S.PENDING, _A.OPERATOR, "resend", "resend",
    "PATCH status pending: due now, with max_attempts again",
)  # fmt: skip
RESEND_UNCERTAIN = Edge(
    _S.UNCERTAIN, _S.PENDING, _A.OPERATOR, "resend", "resend",
    "PATCH status pending: the operator accepts a possible duplicate",
)  # fmt: skip
RESOLVE_DELIVERED = Edge(
    _S.UNCERTAIN, _S.DELIVERED, _A.OPERATOR, "resolve", "resolve",
    "PATCH status delivered: the recipient has it (telegram_message_id optional)",
)  # fmt: skip
RESOLVE_FAILED = Edge(
    _S.UNCERTAIN, _S.FAILED, _A.OPERATOR, "resolve", "resolve",
    "PATCH status failed: it did not arrive, and is not to be sent again",
)  # fmt: skip

TRANSITIONS: tuple[Edge, ...] = (
    CREATED,
    REFUSED_BLOCKED,
    REFUSED_UNSUBSCRIBED,
    CLAIMED,
    EXPIRED_UNSENT,
    DELIVERED,
    RETRY,
    MIGRATED,
    REJECTED,
    EXHAUSTED,
    EXPIRED,
    AMBIGUOUS,
    LATE_DELIVERED,
    LEASE_LOST,
    LEASE_UNSENT,
    LEASE_RETRY,
    LEASE_EXHAUSTED,
    CLIENT_CANCEL,
    OPERATOR_CANCEL,
    RESEND_FAILED,
    RESEND_UNCERTAIN,
    RESOLVE_DELIVERED,
    RESOLVE_FAILED,
)


def allowed(
    actor: Actor, *, action: str | None = None, to: TaskStatus | None = None
) -> dict[tuple[TaskStatus, TaskStatus], str]:
    """(from, to) -> reason of `actor`'s transitions, narrowed to one action or target."""
    return {
        (e.frm, e.to): e.reason
        for e in TRANSITIONS
        if e.frm is not None
        and e.actor is actor
        and (action is None or e.action == action)
        and (to is None or e.to is to)
    }


def pairs(action: str) -> frozenset[tuple[TaskStatus, TaskStatus]]:
    """The (from, to) pairs one step may make: what its statement's fence admits."""
    return frozenset((e.frm, e.to) for e in TRANSITIONS if e.action == action and e.frm)


# What an operator may do with PATCH: (from, to) -> the reason by default.
OPERATOR_TRANSITIONS: Mapping[tuple[TaskStatus, TaskStatus], str] = allowed(Actor.OPERATOR)
# The statuses PATCH accepts at all; another one is 422, one of these from the wrong
# status is 409.
OPERATOR_TARGETS: tuple[TaskStatus, ...] = tuple(
    s for s in TaskStatus if any(to is s for _, to in OPERATOR_TRANSITIONS)
)
