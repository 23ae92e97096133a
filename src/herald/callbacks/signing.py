"""Standard Webhooks (https://www.standardwebhooks.com/): the headers of one attempt.

`webhook-signature` is `v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")),
the key being the base64-decoded part of the `whsec_...` secret; during a rotation one
signature per secret, separated by a space. Receivers verify with any Standard Webhooks
library (the tests use the `standardwebhooks` package, not this module).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from functools import lru_cache

from herald.config import WEBHOOK_SECRET_PREFIX, webhook_secret_key


def new_secret() -> str:
    """A fresh secret: 32 random bytes."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@lru_cache(maxsize=256)
def _key(secret: str) -> bytes | None:
    # Decoded once per secret, not per request.
    return webhook_secret_key(secret)


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = _key(secret)
    if key is None:  # checked where secrets are accepted; never echo one
        raise ValueError("not a whsec_ secret")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The request headers of one attempt, signed with every secret given."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets_),
    }


def message_id(task_id: int, seq: int) -> str:
    """The `webhook-id` of a task's event number `seq`: the same on every retry."""
    return f"msg_{task_id}_{seq}"


def update_message_id(update_id: int, event_id: int) -> str:
    """The `webhook-id` of a recipient's event: the update it comes from and its outbox
    row (one update may concern several recipients), the same on every retry."""
    return f"msg_u{update_id}_{event_id}"
