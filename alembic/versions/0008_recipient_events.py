"""recipient events: what people say to the bot, forwarded through the callbacks' outbox

- `callback_endpoints.updates`: the client opted in to its recipients' events
  (`message.received`, `recipient.linked`, ...; docs/callbacks.md).
- `callback_events` holds two kinds of stream: a task's events (`task_id`, numbered from
  1 by the trigger of 0006) and a recipient's (`recipient`, the client's external_id,
  numbered by Telegram's `update_id`). Exactly one of the two is set.
- `seq` becomes bigint: an `update_id` is Telegram's, not ours to bound. The type change
  rewrites the table once (its lock holds task transitions for the rewrite's duration:
  the outbox is small, its delivered rows leave with their tasks).
- The unique index on (client, recipient, seq) makes an update write at most one event
  per recipient; the partial index of open recipient events serves the claim's "only
  the lowest open event of its stream" without walking the recipient's history.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RECIPIENT_STREAM = sa.text("task_id IS NULL")
_RECIPIENT_OPEN = sa.text("task_id IS NULL AND status IN ('pending', 'sending')")


def upgrade() -> None:
    op.add_column(
        "callback_endpoints",
        sa.Column("updates", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.alter_column("callback_events", "task_id", existing_type=sa.BigInteger(), nullable=True)
    op.alter_column("callback_events", "seq", existing_type=sa.Integer(), type_=sa.BigInteger())
    op.add_column("callback_events", sa.Column("recipient", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_callback_events_one_stream"),
        "callback_events",
        "(task_id IS NULL) <> (recipient IS NULL)",
    )
    op.create_index(
        "uq_callback_events_recipient_seq",
        "callback_events",
        ["client", "recipient", "seq"],
        unique=True,
        postgresql_where=_RECIPIENT_STREAM,
    )
    op.create_index(
        "ix_callback_events_recipient_open",
        "callback_events",
        ["client", "recipient", "seq"],
        postgresql_where=_RECIPIENT_OPEN,
    )


def downgrade() -> None:
    # A recipient's events have no place in 0007's table: they go, with their attempts.
    op.execute(
        "DELETE FROM callback_attempts a USING callback_events e"
        " WHERE a.event_id = e.id AND e.task_id IS NULL"
    )
    op.execute("DELETE FROM callback_events WHERE task_id IS NULL")
    op.drop_index("ix_callback_events_recipient_open", table_name="callback_events")
    op.drop_index("uq_callback_events_recipient_seq", table_name="callback_events")
    op.drop_constraint(op.f("ck_callback_events_one_stream"), "callback_events", type_="check")
    op.drop_column("callback_events", "recipient")
    op.alter_column("callback_events", "seq", existing_type=sa.BigInteger(), type_=sa.Integer())
    op.alter_column("callback_events", "task_id", existing_type=sa.BigInteger(), nullable=False)
    op.drop_column("callback_endpoints", "updates")
