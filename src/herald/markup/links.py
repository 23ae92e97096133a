"""Where a link in markup points: tdlib's tg:// parsing and, roughly, its URL check.

`[text](url)` and `<a href>` make a text_link only for a URL Telegram accepts, and a
text_mention for tg://user?id=N; ![..](tg://emoji?id=N) and tg://time?unix=N links make
a custom emoji and a date. A link Telegram does not accept is no entity, not an error.
"""

from __future__ import annotations

import re
from functools import lru_cache

from herald.markup.entities import ascii_lower, date_format_ok, entity, int64


def _tg_query(url: str, host: str) -> str | None:
    """The query of `tg://HOST?QUERY` (tdlib's check_tg_url_host), or None."""
    lowered = ascii_lower(url[: 3 + 2 + len(host) + 1])
    if not lowered.startswith("tg:"):
        return None
    lowered, url = lowered[3:], url[3:]
    if url.startswith("//"):
        lowered, url = lowered[2:], url[2:]
    if not lowered.startswith(host) or (len(url) > len(host) and url[len(host)] not in "/?#"):
        return None
    url = url[len(host) :].removeprefix("/")
    if not url.startswith("?"):
        return None
    return url[1:].partition("#")[0]


def custom_emoji_id(url: str) -> int | None:
    query = _tg_query(url, "emoji")
    if query is None:
        return None
    for parameter in query.split("&"):
        key, _, value = parameter.partition("=")
        if key == "id":
            number = int64(value)
            return number if number else None
    return None


def formatted_date(url: str) -> tuple[int, str] | None:
    """(Unix time, format) of a `tg://time?unix=...&format=...` link, or None."""
    query = _tg_query(url, "time")
    if query is None:
        return None
    date, date_format = 0, ""
    for parameter in query.split("&"):
        key, _, value = parameter.partition("=")
        if key == "unix":
            number = int64(value)
            if number is None or not 0 < number < 2**31:
                return None
            date = number
        elif key == "format":
            date_format = value
    if not date or not date_format_ok(date_format):
        return None
    return date, date_format


_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")
_PATH_START = re.compile(r"[/?#]")


def checked_link(url: str) -> str | None:
    """Roughly tdlib's get_checked_link: the URL a text link gets, or None for no link.

    tg:, ton: and tonsite: links are kept; anything else must be an http(s) URL, with
    the scheme optional, whose host has a dot.
    """
    head = ascii_lower(url[:8])
    if head.startswith(("tg:", "ton:", "tonsite:")):
        return url
    if not url or _UNSAFE.search(url):
        return None
    scheme, rest = "http", url
    if head.startswith("http://"):
        rest = url[7:]
    elif head.startswith("https://"):
        scheme, rest = "https", url[8:]
    elif "://" in url:
        return None
    m = _PATH_START.search(rest)
    end = m.start() if m else len(rest)
    authority, path = rest[:end], rest[end:]
    host, _, port = authority.rpartition("@")[2].partition(":")
    if port and not (port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
        return None
    if "." not in host or host.startswith(".") or not host.strip("."):
        return None
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{authority}{path}"


def _target(url: str) -> tuple[str, str | int] | None:
    """("user", id) for tg://user?id=N, ("url", the URL Telegram keeps), or None."""
    query = _tg_query(ascii_lower(url), "user")
    if query is not None:
        for parameter in query.split("&"):
            key, _, value = parameter.partition("=")
            if key == "id":
                user_id = int64(value)
                if user_id is not None and user_id > 0:
                    return "user", user_id
                break
    link = checked_link(url)
    return ("url", link) if link is not None else None


# A text repeating one link thousands of times checks it once. Only short URLs are kept,
# so the cache stays small whatever the texts hold.
_cached_target = lru_cache(maxsize=256)(_target)


def link_entity(start: int, end: int, url: str) -> dict[str, object] | None:
    """A text link's entity: a mention for tg://user?id=N, a text_link, or None."""
    target = _cached_target(url) if len(url) <= 256 else _target(url)
    if target is None:
        return None
    if target[0] == "user":
        return entity("text_mention", start, end, user={"id": target[1]})
    return entity("text_link", start, end, url=target[1])
