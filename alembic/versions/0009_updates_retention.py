"""retention reaches what people send: stored updates, recipients' events, old links

Retention (herald.delivery.retention) purged final tasks with their events and status
callbacks only; Telegram's updates, the events they caused for recipients (no task
holds those) and spent or expired deep links stayed forever. Each gets the index its
oldest-first purge walks, so a run that finds nothing to purge reads a few index pages,
not the table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RECIPIENT_FINISHED = sa.text("task_id IS NULL AND status IN ('delivered', 'failed')")


def upgrade() -> None:
    op.create_index("ix_telegram_updates_received_at", "telegram_updates", ["received_at"])
    op.create_index(
        "ix_callback_events_recipient_finished",
        "callback_events",
        ["finished_at"],
        postgresql_where=_RECIPIENT_FINISHED,
    )
    op.create_index("ix_recipient_links_expires_at", "recipient_links", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_recipient_links_expires_at", table_name="recipient_links")
    op.drop_index("ix_callback_events_recipient_finished", table_name="callback_events")
    op.drop_index("ix_telegram_updates_received_at", table_name="telegram_updates")
