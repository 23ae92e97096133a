"""How the console writes times, durations and numbers (template filters). Times are UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def when(value: datetime | float | None) -> str:
    if value is None:
        return "—"
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def age(value: datetime | None) -> str:
    if value is None:
        return "—"
    return duration((datetime.now(UTC) - value).total_seconds())


def number(value: int | float | None) -> str:
    return "—" if value is None else f"{value:,}"


def pretty_json(value: Any) -> str:
    if isinstance(value, str):
        value = json.loads(value)
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


FILTERS = {
    "when": when,
    "iso": iso,
    "duration": duration,
    "age": age,
    "number": number,
    "pretty_json": pretty_json,
}
