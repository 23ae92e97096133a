"""task_events without a foreign key to tasks

The constraint's check (one trigger call per audit row) took 7.9 ms of a 27.5 ms
500-task batch insert, and batch intake reached 13,600-14,900 tasks/s without it against
8,700-9,200 with it, measured alternately in one session (docs/benchmarks.md). Events
are only ever written in the statement or transaction that holds their task, and tasks
are never deleted, so the check guarded nothing the code does not already ensure.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("fk_task_events_task_id_tasks", "task_events", type_="foreignkey")


def downgrade() -> None:
    op.create_foreign_key(
        "fk_task_events_task_id_tasks",
        "task_events",
        "tasks",
        ["task_id"],
        ["id"],
        ondelete="CASCADE",
    )
