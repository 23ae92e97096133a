"""tasks.failures: failed attempts, counted apart from claims; stored errors without tokens

`attempt` counts claims and fences each record; it grew with every 429 too, so a task with
max_attempts 5 that met four 429s failed on its first real error. `failures` counts the
attempts that failed (Telegram refused, the connection never opened, an at-least-once
task's ambiguous answer), never flow control, and `max_attempts` bounds it
(`delivery/policy.py`). Tasks still pending or failed start with `failures = attempt`:
none gets more tries than the rule it was created under allowed.

`last_error` could hold the bot token (aiohttp quotes the Bot API URL in some errors,
issue 11): stored errors are redacted here as the worker now redacts them when it writes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The patterns of herald.telegram.redact, in PostgreSQL's regular expressions.
_REDACT = r"""
UPDATE tasks SET last_error = regexp_replace(
    regexp_replace(last_error, '(bot[0-9]+(:|%3[Aa]))[^/[:space:]''"?&#]+', '\1[REDACTED]', 'g'),
    '([0-9]{3,}:)[A-Za-z0-9_-]{30,}', '\1[REDACTED]', 'g')
WHERE last_error ~ 'bot[0-9]+(:|%3[Aa])|[0-9]{3,}:[A-Za-z0-9_-]{30,}'
"""


def upgrade() -> None:
    # A constant default: PostgreSQL 11+ adds the column without rewriting the table.
    op.add_column("tasks", sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE tasks SET failures = attempt WHERE status IN ('pending', 'failed') AND attempt > 0"
    )
    op.execute(_REDACT)


def downgrade() -> None:
    op.drop_column("tasks", "failures")
