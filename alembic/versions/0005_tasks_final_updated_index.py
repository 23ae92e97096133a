"""ix_tasks_final_updated: retention's pick of the oldest final tasks

A partial index on `updated_at` over delivered, failed and cancelled tasks only, so the
purge (delivery/retention.py) finds its next batch without scanning the live tasks.
Built CONCURRENTLY: on a large table a plain CREATE INDEX would block intake meanwhile.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_tasks_final_updated",
            "tasks",
            ["updated_at"],
            postgresql_where=sa.text("status IN ('cancelled', 'delivered', 'failed')"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_tasks_final_updated", table_name="tasks", postgresql_concurrently=True)
