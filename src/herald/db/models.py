"""The two tables: tasks (one row per accepted notification) and task_events (its audit trail).

A task is due when its status is pending and `next_attempt_at <= now()`; `next_attempt_at`
starts at `send_at` (or the creation time) and moves forward on every retry.

A task is written here in its forms, side by side: the table as SQLAlchemy declares it
(what Alembic and the migrations test compare with the database), the record the code
reads (`TaskRecord`: the statements' column lists, the rows they return and the API's
view are derived from it) and what intake writes (`NewTask`). `tests/test_definitions.py`
checks that they agree, so a column is added here, in a migration, and in
`herald.api.schemas` when the API takes or shows it (docs/architecture.md, "Add a task
field").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from herald.callbacks.events import CallbackStatus
from herald.db.base import Base
from herald.db.sql import FINAL_PREDICATE, literal, literals
from herald.states import DeliveryMode, TaskStatus

_STATUSES = literals(TaskStatus)
_MODES = literals(DeliveryMode)
_PENDING = literal(TaskStatus.PENDING)
_SENDING = literal(TaskStatus.SENDING)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    # sha256 of the canonical JSON of the request body: same key + other hash -> 422.
    request_hash: Mapped[bytes] = mapped_column(LargeBinary)
    chat_id: Mapped[str] = mapped_column(Text)
    # The producer's name of the person (POST /api/recipients): chat_id is then the chat
    # it was bound to at intake.
    recipient: Mapped[str | None] = mapped_column(Text)
    # Everything sendMessage needs besides chat_id: text, parse_mode, buttons, flags.
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Free JSON kept for the producer, never interpreted.
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    priority: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    delivery: Mapped[str] = mapped_column(
        Text, server_default=text(literal(DeliveryMode.EXACTLY_ONCE))
    )
    send_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    status: Mapped[str] = mapped_column(Text, server_default=text(_PENDING))
    # Claims made: fences each attempt's record. `failures` counts the attempts that failed
    # (never a 429), and `max_attempts` bounds it (delivery/policy.py).
    attempt: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Last time the id was handed to the queue; the sweeper re-enqueues stale due tasks.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The send gate of a claim that waits for its rate-limit slot: false until the worker
    # begins the request, then true; NULL when the claim sends at once (claim.py).
    send_started: Mapped[bool | None] = mapped_column(Boolean)

    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # Set when Telegram said the group became a supergroup: later sends go there.
    migrated_chat_id: Mapped[str | None] = mapped_column(Text)
    last_error_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str | None] = mapped_column(Text)
    # Where this task's status callbacks go instead of its client's endpoint URL: a host
    # that endpoint allows (checked at intake; docs/callbacks.md).
    callback_url: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("client", "idempotency_key", name="uq_tasks_client_idempotency_key"),
        CheckConstraint(f"status IN ({_STATUSES})", name="status"),
        CheckConstraint(f"delivery IN ({_MODES})", name="delivery"),
        # The worker's and sweeper's hot query: due pending tasks, higher priority first.
        Index(
            "ix_tasks_due",
            text("priority DESC"),
            "next_attempt_at",
            postgresql_where=text(f"status = {_PENDING}"),
        ),
        Index("ix_tasks_lease", "lease_expires_at", postgresql_where=text(f"status = {_SENDING}")),
        # Listing: newest first, cursor on id; per client, status and chat.
        Index("ix_tasks_client_id", "client", "id"),
        Index("ix_tasks_status_id", "status", "id"),
        Index("ix_tasks_chat_id_id", "chat_id", "id"),
        Index("ix_tasks_created_at", "created_at"),
        # Retention's pick: the oldest final tasks (delivery/retention.py).
        Index(
            "ix_tasks_final_updated",
            "updated_at",
            postgresql_where=text(FINAL_PREDICATE),
        ),
    )


class TaskEvent(Base):
    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # No foreign key (migration 0002): its per-row check cost a third of batch intake's
    # insert; events are only written beside their task, and retention deletes both in
    # one statement.
    task_id: Mapped[int] = mapped_column(BigInteger, index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # "client:NAME", "operator:NAME", "worker:ID" or "sweeper".
    actor: Mapped[str] = mapped_column(Text)
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    # Telegram's error_code, when the transition came from one.
    error_code: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class TaskRecord(NamedTuple):
    """A task as the code reads it: every column of `tasks`, by the column's name.

    A NamedTuple: made from an asyncpg row in one call (`TaskRecord._make(row)`), since
    the statements select `TASK_COLUMNS` in this order.
    """

    id: int
    client: str
    idempotency_key: str
    request_hash: bytes
    chat_id: str
    recipient: str | None
    content: dict[str, Any]
    metadata: dict[str, Any] | None
    priority: int
    delivery: str
    send_at: datetime | None
    expires_at: datetime | None
    status: str
    attempt: int
    failures: int
    max_attempts: int
    next_attempt_at: datetime
    enqueued_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    send_started: bool | None
    telegram_message_id: int | None
    migrated_chat_id: str | None
    last_error_code: int | None
    last_error: str | None
    correlation_id: str | None
    callback_url: str | None
    created_at: datetime
    updated_at: datetime


class NewTask(NamedTuple):
    """What intake stores from one request: each field goes to the column of its name
    (the statements of `herald.db.intake` are rendered from these fields).

    The first four the gateway derives; the rest are `TaskIn`'s fields of the same name,
    taken as they are, in this order (`herald.api.routes.intake` builds a NewTask
    positionally, 500 times a batch, and checks this at import)."""

    idempotency_key: str
    request_hash: bytes
    content: dict[str, Any]
    max_attempts: int
    chat_id: str  # a ChatId
    metadata: dict[str, Any] | None
    priority: int
    delivery: str
    send_at: datetime | None
    expires_at: datetime | None
    callback_url: str | None = None
    recipient: str | None = None


NEW_TASK_DERIVED = 4  # NewTask's fields before those taken from the request as they are


class EventRecord(NamedTuple):
    """An audit event as the code reads it (every column of `task_events`)."""

    id: int
    task_id: int
    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    attempt: int | None
    reason: str | None
    error_code: int | None
    details: dict[str, Any] | None


_CALLBACK_STATUSES = literals(CallbackStatus)
_CALLBACK_OPEN = literals((CallbackStatus.PENDING, CallbackStatus.SENDING))
_CALLBACK_FINAL = literals((CallbackStatus.DELIVERED, CallbackStatus.FAILED))


class CallbackEndpoint(Base):
    """Where a client's status callbacks go (`herald.callbacks`), from HERALD_CALLBACKS
    (source `env`) or PUT /api/callbacks (source `api`)."""

    __tablename__ = "callback_endpoints"

    client: Mapped[str] = mapped_column(Text, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # The hosts a task's own `callback_url` may name (the URL's host by default).
    hosts: Mapped[list[str]] = mapped_column(ARRAY(Text))
    secret: Mapped[str] = mapped_column(Text)  # whsec_...
    # During a rotation: the secret being retired, still signing until previous_until.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(Text)
    # Set when every attempt since `failing_since` failed for HERALD_CALLBACK_PAUSE_AFTER_SECONDS.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The client also hears what its recipients say and do (message.received, ...).
    updates: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CallbackEvent(Base):
    """The outbox: one row per event a producer hears of, in one of two kinds of stream.
    A task's, written by the trigger on task_events in the transaction of the transition
    (migration 0006); a recipient's, written in the transaction that stores the Telegram
    update (herald.updates.take, migration 0008)."""

    __tablename__ = "callback_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    task_id: Mapped[int | None] = mapped_column(BigInteger)
    # The client's external_id of the recipient whose update this event forwards.
    recipient: Mapped[str | None] = mapped_column(Text)
    client: Mapped[str] = mapped_column(Text)
    # The order of sending within the stream: a task's from 1, a recipient's update_id.
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(Text)  # task.delivered, ...
    url: Mapped[str | None] = mapped_column(Text)  # the task's callback_url, if any
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, server_default=text(literal(CallbackStatus.PENDING)))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # pending: when it is due; sending: when its lease expires (then it is due again).
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    lease_owner: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("task_id", "seq", name="uq_callback_events_task_seq"),
        CheckConstraint(f"status IN ({_CALLBACK_STATUSES})", name="status"),
        CheckConstraint("(task_id IS NULL) <> (recipient IS NULL)", name="one_stream"),
        # The senders' claim: open events by due time.
        Index(
            "ix_callback_events_due",
            "next_attempt_at",
            postgresql_where=text(f"status IN ({_CALLBACK_OPEN})"),
        ),
        # An update writes at most one event per recipient.
        Index(
            "uq_callback_events_recipient_seq",
            "client",
            "recipient",
            "seq",
            unique=True,
            postgresql_where=text("task_id IS NULL"),
        ),
        # The claim's "no earlier open event in this recipient's stream".
        Index(
            "ix_callback_events_recipient_open",
            "client",
            "recipient",
            "seq",
            postgresql_where=text(f"task_id IS NULL AND status IN ({_CALLBACK_OPEN})"),
        ),
        # Retention's pick of a recipient's finished events, oldest first.
        Index(
            "ix_callback_events_recipient_finished",
            "finished_at",
            postgresql_where=text(f"task_id IS NULL AND status IN ({_CALLBACK_FINAL})"),
        ),
    )


class CallbackAttempt(Base):
    """One HTTP attempt of an event: what GET /api/tasks/{id}/callbacks shows."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(BigInteger, index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    worker: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)


class CallbackAudit(Base):
    """What happened to an endpoint: set, rotated, paused, resumed (never its secret)."""

    __tablename__ = "callback_audit"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(Text, index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class TelegramUpdate(Base):
    """Every update Telegram sent, once: the webhook's and the poller's inserts are
    `ON CONFLICT (bot_id, update_id) DO NOTHING` (herald.updates)."""

    __tablename__ = "telegram_updates"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # The bot it came to (the digits of its token): room for several bots.
    bot_id: Mapped[int] = mapped_column(BigInteger)
    update_id: Mapped[int] = mapped_column(BigInteger)
    # The update's one field besides update_id: message, my_chat_member, ...
    kind: Mapped[str] = mapped_column(Text)
    chat_id: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        UniqueConstraint("bot_id", "update_id", name="uq_telegram_updates_bot_id_update_id"),
        Index("ix_telegram_updates_chat_id_id", "chat_id", "id"),
        Index("ix_telegram_updates_received_at", "received_at"),  # retention's pick
    )


class TelegramOffset(Base):
    """`herald poll`'s getUpdates offset, advanced in the transaction that stores the
    updates before it: a restart neither loses nor repeats one."""

    __tablename__ = "telegram_offsets"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChatState(Base):
    """What Herald remembers of a chat: blocked (a 403 or my_chat_member said so) and
    where a group went when it became a supergroup."""

    __tablename__ = "chats"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chat_id: Mapped[str] = mapped_column(Text, primary_key=True)
    blocked: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Why: Telegram's error text, or the my_chat_member status.
    blocked_reason: Mapped[str | None] = mapped_column(Text)
    migrated_to: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Recipient(Base):
    """A producer's (client, external_id) bound to a chat by a deep link."""

    __tablename__ = "recipients"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    client: Mapped[str] = mapped_column(Text, primary_key=True)
    external_id: Mapped[str] = mapped_column(Text, primary_key=True)
    chat_id: Mapped[str] = mapped_column(Text)
    # False after /stop: tasks to it fail with recipient_unsubscribed until /start.
    subscribed: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    bound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_recipients_bot_id_chat_id", "bot_id", "chat_id"),)


class RecipientLink(Base):
    """A one-time deep link code: `https://t.me/<bot>?start=<code>`."""

    __tablename__ = "recipient_links"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    bot_id: Mapped[int] = mapped_column(BigInteger)
    client: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str] = mapped_column(Text)
    welcome: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_by_chat: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_recipient_links_expires_at", "expires_at"),)  # retention


TASK_COLUMNS = ", ".join(TaskRecord._fields)
EVENT_COLUMNS = ", ".join(EventRecord._fields)
