"""Bot tokens out of every text Herald stores, shows or logs.

A Bot API URL carries the token in its path (`/bot<token>/<method>`), and aiohttp quotes
URLs in some of its errors (too many redirects, a redirect to another scheme, a connect
timeout). `redact` masks the configured token wherever it appears, its secret half alone
too, and anything shaped like a token: `bot<digits>:<secret>` in a path (also with the
colon URL-encoded) and `<digits>:<30 or more URL-safe characters>` anywhere. The digits
are the bot's public id and stay, so a line still says which bot it was about.

It is applied where errors become text (`delivery/classify.py`) and to every rendered log
line (`herald.logging`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[REDACTED]"

_BOT_PATH = re.compile(r"(?<![A-Za-z0-9])(bot\d+(?::|%3[Aa]))[^/\s'\"?&#]+")
_SHAPED = re.compile(r"(?<![\w-])(\d{3,}:)[A-Za-z0-9_-]{30,}(?![\w-])")
# Below this, the secret half alone could be an ordinary word.
_MIN_SECRET = 8


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every bot token in it masked (`secrets`: the configured tokens)."""
    for token in secrets:
        if not token:
            continue
        bot_id, colon, secret = token.partition(":")
        if colon and bot_id.isdigit():
            text = text.replace(token, f"{bot_id}:{MASK}")
            if len(secret) >= _MIN_SECRET:
                text = text.replace(secret, MASK)
        else:
            text = text.replace(token, MASK)
    if ":" not in text and "%3" not in text:
        return text
    text = _BOT_PATH.sub(rf"\g<1>{MASK}", text)
    return _SHAPED.sub(rf"\g<1>{MASK}", text)
