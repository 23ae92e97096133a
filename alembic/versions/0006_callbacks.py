"""Status callbacks: endpoints, the outbox, its attempts, and the trigger that fills it

`callback_events` is an outbox: a row per event a producer hears of (docs/callbacks.md),
written by a trigger on `task_events`, so in the same statement (and transaction) as
the transition whose audit event it follows, whichever statement made it (intake, the
claim, the record, the sweeper, an operator's PATCH or DELETE, the console's bulk
actions). The trigger's WHEN clause lets the transitions no producer hears of (created,
claimed, a retry) pass without calling the function; the function writes a row only for
a client with an endpoint. `tasks.callback_url` is a task's own address for them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 13:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Which event a task_events row is: herald.callbacks.events.event_type says the same in
# Python, and tests/callbacks/test_outbox.py checks the two against every transition.
_FUNCTION = """
CREATE FUNCTION herald_callback_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t record;
    kind text;
    n integer;
BEGIN
    SELECT tk.id, tk.client, tk.idempotency_key, tk.status, tk.attempt, tk.metadata,
           tk.created_at, tk.updated_at, tk.telegram_message_id, tk.last_error_code,
           tk.last_error, tk.callback_url
    INTO t
    FROM tasks tk JOIN callback_endpoints e ON e.client = tk.client
    WHERE tk.id = NEW.task_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    kind := CASE
        WHEN NEW.to_status = 'pending' THEN 'task.resent'
        WHEN NEW.from_status = 'uncertain' AND NEW.to_status IN ('delivered', 'failed')
             AND split_part(NEW.actor, ':', 1) = 'operator' THEN 'task.resolved'
        WHEN NEW.to_status = 'failed' AND NEW.reason = 'expired' THEN 'task.expired'
        ELSE 'task.' || NEW.to_status END;
    -- The task's row is locked by the statement that moved it: no other transition of
    -- this task can take the same number.
    n := coalesce((SELECT max(seq) FROM callback_events WHERE task_id = t.id), 0) + 1;
    INSERT INTO callback_events (task_id, client, seq, type, url, payload)
    VALUES (
        t.id, t.client, n, kind, t.callback_url,
        jsonb_build_object(
            'type', kind,
            'timestamp', NEW.at,
            'data', jsonb_build_object(
                'task_id', t.id,
                'idempotency_key', t.idempotency_key,
                'status', NEW.to_status,
                'previous_status', NEW.from_status,
                'attempt', t.attempt,
                'reason', NEW.reason,
                'telegram_message_id',
                    CASE WHEN NEW.to_status = 'delivered' THEN t.telegram_message_id END,
                'error_code', CASE WHEN NEW.to_status = 'failed' THEN t.last_error_code END,
                'error', CASE WHEN NEW.to_status IN ('failed', 'uncertain')
                              THEN t.last_error END,
                'metadata', t.metadata,
                'created_at', t.created_at,
                'updated_at', t.updated_at,
                'seq', n
            )
        )
    );
    RETURN NULL;
END
$$
"""

_TRIGGER = """
CREATE TRIGGER task_events_callback AFTER INSERT ON task_events
FOR EACH ROW
WHEN (NEW.to_status IN ('delivered', 'failed', 'uncertain', 'cancelled')
      OR (NEW.to_status = 'pending' AND NEW.from_status IN ('failed', 'uncertain')))
EXECUTE FUNCTION herald_callback_event()
"""


def upgrade() -> None:
    op.add_column("tasks", sa.Column("callback_url", sa.Text(), nullable=True))
    op.create_table(
        "callback_endpoints",
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("hosts", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("client", name=op.f("pk_callback_endpoints")),
    )
    op.create_table(
        "callback_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'delivered', 'failed')",
            name=op.f("ck_callback_events_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_events")),
        sa.UniqueConstraint("task_id", "seq", name="uq_callback_events_task_seq"),
    )
    op.create_index(
        "ix_callback_events_due",
        "callback_events",
        ["next_attempt_at"],
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )
    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("worker", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempts")),
    )
    op.create_index(
        op.f("ix_callback_attempts_event_id"), "callback_attempts", ["event_id"], unique=False
    )
    op.create_table(
        "callback_audit",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_audit")),
    )
    op.create_index(op.f("ix_callback_audit_client"), "callback_audit", ["client"], unique=False)
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER task_events_callback ON task_events")
    op.execute("DROP FUNCTION herald_callback_event()")
    op.drop_index(op.f("ix_callback_audit_client"), table_name="callback_audit")
    op.drop_table("callback_audit")
    op.drop_index(op.f("ix_callback_attempts_event_id"), table_name="callback_attempts")
    op.drop_table("callback_attempts")
    op.drop_index("ix_callback_events_due", table_name="callback_events")
    op.drop_table("callback_events")
    op.drop_table("callback_endpoints")
    op.drop_column("tasks", "callback_url")
