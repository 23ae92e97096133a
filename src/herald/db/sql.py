"""Rendering constants into SQL text.

Statuses and audit reasons are written into the statements once, at import, from
`herald.states` rather than bound per call: a bound status would hide from the planner
that `status = 'pending'` matches the partial indexes (`ix_tasks_due`, `ix_tasks_lease`)
once asyncpg's prepared statements switch to generic plans.
"""

from __future__ import annotations

from collections.abc import Iterable


def literal(value: str) -> str:
    """`value` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def literals(values: Iterable[str]) -> str:
    """A comma-separated list of literals, for `IN (...)`."""
    return ", ".join(literal(v) for v in values)
