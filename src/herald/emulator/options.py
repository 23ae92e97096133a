"""What an emulator is told at start: Telegram's limits, injected faults, what it keeps.

The defaults are written here only: `run_emulator(**options)`, the `herald emulator` flags
and the control API read them from these dataclasses, so the three cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# Messages and requests kept for the control API (records.py), the oldest dropped first.
DEFAULT_KEEP = 10_000


class OptionError(ValueError):
    """An option is out of range; the control API answers it with 400."""


@dataclass(frozen=True, slots=True)
class LimitConfig:
    """Telegram's flood limits (Bot FAQ). A rate of 0 switches that scope off."""

    enabled: bool = True
    per_chat_per_second: float = 1.0
    per_group_per_minute: float = 20.0
    global_per_second: float = 30.0

    def __post_init__(self) -> None:
        for name in LIMIT_RATES:
            if getattr(self, name) < 0:
                raise OptionError(f"{name} must be >= 0")


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Shares of send requests answered with a fault; together at most 1.

    429, 500, 502 and a proxy's 502 are answered before the message is accepted (nothing
    delivered).
    `timeout`, `drop` and `garbage` are the ambiguous cases: the message is accepted and
    recorded, then the answer is delayed by `timeout_seconds`, the connection is closed
    unanswered, or the answer is JSON that says neither success nor error.
    `mistyped` is drawn apart, after the rest (so it is not part of the sum): that share of
    JSON answers, successes and errors alike, comes with extra fields and fields of a type
    aiogram's models refuse, as from a Bot API newer than the client (`faults.py`).
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_502: float = 0.0
    rate_proxy_502: float = 0.0  # an HTML 502 page from a proxy, not Telegram's JSON
    rate_timeout: float = 0.0
    rate_drop: float = 0.0
    rate_garbage: float = 0.0
    rate_mistyped: float = 0.0
    retry_after: int = 1
    timeout_seconds: float = 15.0
    seed: int | None = None

    def __post_init__(self) -> None:
        rates = self._rates()
        if any(not 0.0 <= r <= 1.0 for r in [*rates, self.rate_mistyped]):
            raise OptionError("fault rates must be between 0 and 1")
        if sum(rates) > 1.0 + 1e-9:
            raise OptionError("fault rates must add up to at most 1")
        if self.retry_after < 1:
            raise OptionError("retry_after must be >= 1")
        if self.timeout_seconds < 0:
            raise OptionError("timeout_seconds must be >= 0")

    def _rates(self) -> list[float]:
        return [
            self.rate_429,
            self.rate_500,
            self.rate_502,
            self.rate_proxy_502,
            self.rate_timeout,
            self.rate_drop,
            self.rate_garbage,
        ]

    @property
    def active(self) -> bool:
        return sum(self._rates()) + self.rate_mistyped > 0


LIMIT_RATES = tuple(f.name for f in fields(LimitConfig) if f.name != "enabled")


def configs(options: dict[str, Any]) -> tuple[LimitConfig, FaultConfig]:
    """The configurations of `run_emulator`'s keyword options: `limits` (False turns every
    rate limit off), the rates of LimitConfig, and the fields of FaultConfig; unnamed ones
    keep the dataclasses' defaults."""
    faults = dict(options)
    limits = {name: faults.pop(name) for name in LIMIT_RATES if name in faults}
    if "limits" in faults:
        limits["enabled"] = faults.pop("limits")
    return LimitConfig(**limits), FaultConfig(**faults)


def build(cls: type[Any], values: dict[str, Any]) -> Any:
    """`cls(**values)` with unknown keys and wrong types reported as OptionError."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise OptionError(f"unknown option(s): {', '.join(unknown)}")
    checked: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in values:
            checked[f.name] = _checked(f.name, values[f.name], f.default)
    return cls(**checked)


def _checked(name: str, value: Any, default: Any) -> Any:
    """JSON and flags give loose types: accept what the field's default's type allows."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise OptionError(f"{name} must be true or false")
        return value
    if default is None or isinstance(default, int):  # seed (int or None), retry_after
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionError(f"{name} must be an integer")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionError(f"{name} must be a number")
    return float(value)
