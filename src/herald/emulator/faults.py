"""Seeded fault injection: one uniform draw per send request picks its fate."""

from __future__ import annotations

import enum
import random

from herald.emulator.options import FaultConfig


class Fault(enum.Enum):
    TOO_MANY_REQUESTS = "fault_429"
    INTERNAL_ERROR = "fault_500"
    BAD_GATEWAY = "fault_502"
    PROXY_BAD_GATEWAY = "fault_proxy_502"
    TIMEOUT = "fault_timeout"
    DROP = "fault_drop"


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
