"""The task filter as the console's forms send it: read, checked, and said back in words."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from herald.db.console import ConsoleFilter
from herald.states import TaskStatus

FIELDS = ("status", "client", "chat_id", "created_after", "created_before", "idempotency_key")
MAX_TEXT = 255


@dataclass
class ParsedFilter:
    filter: ConsoleFilter
    # What the form showed, to show it again (also when it had an error).
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def query(self, **extra: str) -> str:
        pairs = {k: v for k, v in self.values.items() if v}
        pairs.update({k: v for k, v in extra.items() if v})
        return urlencode(pairs)

    def describe(self, statuses: list[str] | None = None) -> str:
        """The filter in words; `statuses`: those an action may take, when no status is
        chosen ("failed or uncertain tasks of billing")."""
        f = self.filter
        parts = []
        if f.status is not None:
            parts.append(f.status.value)
        elif statuses:
            parts.append(" or ".join(statuses))
        parts.append("tasks")
        if f.client is not None:
            parts.append(f"of {f.client}")
        if f.chat_id is not None:
            parts.append(f"to chat {f.chat_id}")
        if f.created_after is not None:
            parts.append(f"created since {_minute(f.created_after)}")
        if f.created_before is not None:
            parts.append(f"created before {_minute(f.created_before)}")
        if f.idempotency_key is not None:
            parts.append(f"with idempotency key {f.idempotency_key!r}")
        return " ".join(parts)


def _minute(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _time(value: str) -> datetime:
    """`datetime-local` input (no zone: UTC, as the page says) or RFC 3339 with a zone."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _chat(value: str) -> str:
    """As the API stores it: an integer's canonical digits, or @channelusername."""
    if value.lstrip("-").isdigit() and len(value) <= 20:
        return str(int(value))
    if value.startswith("@") and 5 <= len(value) <= 33 and value[1:].replace("_", "").isalnum():
        return value
    raise ValueError("a chat id is an integer or @channelusername")


def parse_filter(get: Callable[[str], str | None]) -> ParsedFilter:
    values = {name: (get(name) or "").strip()[:MAX_TEXT] for name in FIELDS}
    errors: dict[str, str] = {}
    kwargs: dict[str, object] = {}
    if values["status"]:
        try:
            kwargs["status"] = TaskStatus(values["status"])
        except ValueError:
            errors["status"] = "not a status"
    for name in ("client", "idempotency_key"):
        if values[name]:
            kwargs[name] = values[name]
    if values["chat_id"]:
        try:
            kwargs["chat_id"] = _chat(values["chat_id"])
        except ValueError as exc:
            errors["chat_id"] = str(exc)
    for name in ("created_after", "created_before"):
        if values[name]:
            try:
                kwargs[name] = _time(values[name])
            except (ValueError, OverflowError):
                errors[name] = "a date and time, such as 2026-11-30T10:00"
    parsed = ParsedFilter(ConsoleFilter(**kwargs), values, errors)  # type: ignore[arg-type]
    return parsed
