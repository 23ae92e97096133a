"""Rendering constants into SQL text.

Statuses and audit reasons are written into the statements once, at import, from
`herald.states` rather than bound per call: a bound status would hide from the planner
that `status = 'pending'` matches the partial indexes (`ix_tasks_due`, `ix_tasks_lease`)
once asyncpg's prepared statements switch to generic plans.
"""

from __future__ import annotations

from collections.abc import Iterable

from herald.states import FINAL_STATUSES, TaskStatus


def literal(value: str) -> str:
    """`value` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def literals(values: Iterable[str]) -> str:
    """A comma-separated list of literals, for `IN (...)`."""
    return ", ".join(literal(v) for v in values)


# The predicate of ix_tasks_final_updated (`db/models.py`). Statements that should use that
# index write exactly this (retention's purge, the console's chart), so the planner matches
# it. Here rather than beside the table: the worker's retention needs it without SQLAlchemy.
FINAL_PREDICATE = f"status IN ({literals(sorted(FINAL_STATUSES))})"

# A due task: pending, its time come. The claims' pick, the sweeper's hints and the due
# backlog's count all write exactly this, on the partial index ix_tasks_due.
DUE_PREDICATE = f"status = {literal(TaskStatus.PENDING)} AND next_attempt_at <= now()"
