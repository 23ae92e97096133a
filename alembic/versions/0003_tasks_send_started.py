"""tasks.send_started: the send gate of a claim that waits for its rate-limit slot

A claim that must wait for its reserved slot is made with `send_started = false`; right
before the request goes out, its worker sets it to true (fenced by attempt and lease
owner). A sweeper that finds the lease expired while it is still false knows that no
request was begun, and none will be, and returns the task to pending instead of calling
it uncertain. NULL: no gate (a claim that sends at once). docs/delivery.md has the rest.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("send_started", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "send_started")
