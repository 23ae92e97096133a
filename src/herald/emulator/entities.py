"""What both parse modes share: Telegram's "can't parse entities" error and an open entity."""

from __future__ import annotations

from dataclasses import dataclass, field


class ParseEntitiesError(ValueError):
    """Telegram's 400 "Bad Request: can't parse entities: ..."."""


@dataclass(slots=True)
class OpenEntity:
    kind: str  # entity type, or an HTML tag name while parsing HTML
    start: int  # offset in the output text (code points)
    source: int  # offset in the source, for error messages
    attrs: dict[str, str] = field(default_factory=dict)


def byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


def parse_error(message: str) -> ParseEntitiesError:
    return ParseEntitiesError(f"Bad Request: can't parse entities: {message}")
