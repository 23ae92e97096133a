"""Seeded fault injection: one uniform draw per send request picks its fate.

A second draw, only when `rate_mistyped` is set, decides whether the JSON answer comes
back mistyped: the same answer with an extra field and a known field in a type aiogram's
models refuse, as a Bot API newer than the client may send. A success keeps its
`message_id` and an error its `error_code`, `description` and `parameters`: a client that
reads what the answer says still knows what happened; one that insists on parsing all of
it (aiogram raises `ClientDecodeError`) does not.
"""

from __future__ import annotations

import enum
import random
from typing import Any

import orjson

from herald.emulator.options import FaultConfig
from herald.emulator.replies import Reply


class Fault(enum.Enum):
    TOO_MANY_REQUESTS = "fault_429"
    INTERNAL_ERROR = "fault_500"
    BAD_GATEWAY = "fault_502"
    PROXY_BAD_GATEWAY = "fault_proxy_502"
    TIMEOUT = "fault_timeout"
    DROP = "fault_drop"
    GARBAGE = "fault_garbage"


# Accepted, then answered with JSON that is neither Telegram's success nor its error.
GARBAGE = Reply(
    200, orjson.dumps({"ok": "maybe", "result": {"status": "accepted"}}), Fault.GARBAGE.value
)

# Added to every mistyped answer: fields a newer Bot API might have.
_EXTRA = {"herald_extra": {"added_in": "Bot API 99.0", "values": [1, 2.5, None]}}


class FaultInjector:
    """The same seed and the same order of requests give the same faults."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)
        bounds: list[tuple[float, Fault]] = []
        total = 0.0
        for rate, fault in (
            (config.rate_429, Fault.TOO_MANY_REQUESTS),
            (config.rate_500, Fault.INTERNAL_ERROR),
            (config.rate_502, Fault.BAD_GATEWAY),
            (config.rate_proxy_502, Fault.PROXY_BAD_GATEWAY),
            (config.rate_timeout, Fault.TIMEOUT),
            (config.rate_drop, Fault.DROP),
            (config.rate_garbage, Fault.GARBAGE),
        ):
            if rate > 0:
                total += rate
                bounds.append((total, fault))
        self._bounds = bounds

    def draw(self) -> Fault | None:
        if not self._bounds:
            return None
        u = self._random.random()
        for bound, fault in self._bounds:
            if u < bound:
                return fault
        return None

    def mistypes(self) -> bool:
        """Should this answer come back mistyped? (No draw at all when the rate is 0, so
        the other faults of a seed stay what they were.)"""
        rate = self.config.rate_mistyped
        return rate > 0 and self._random.random() < rate


def mistyped(reply: Reply) -> Reply:
    """`reply` with an extra field and a mistyped one; a body that is not JSON stays as it is."""
    if reply.content_type != b"application/json":
        return reply
    body: dict[str, Any] = orjson.loads(reply.body)
    body.update(_EXTRA)
    result = body.get("result")
    if body.get("ok") is True:
        if isinstance(result, dict):
            # The field of the report in issue 12: an object sent as a JSON string.
            result["link_preview_options"] = '{"is_disabled": true}'
            result.update(_EXTRA)
    else:
        # An error whose `result` is a string where aiogram expects the method's result.
        body["result"] = "none"
    return Reply(reply.status, orjson.dumps(body), f"{reply.outcome}_mistyped", reply.content_type)
