"""Logs that scale: a summary per interval at INFO, the per-message lines at DEBUG.

taskiq logs "Executing task herald.deliver with ID ..." at INFO for every message, and the
pipeline logs each recorded failure: 10,000 deliveries made 11,642 lines (docs/benchmarks.md),
1,000 JSON lines/s at 1,000 deliveries/s. `demote_per_message_lines` moves those lines to
DEBUG; instead, each worker process logs one `worker_summary` line every
`HERALD_WORKER_SUMMARY_SECONDS` (none for an interval in which nothing happened). Under
`herald dev` the per-message lines stay at INFO. The summary:

    messages         queue messages handled; of them nothing_due (nothing left to claim:
                     a duplicate or early hint) and errors (the task raised)
    outcomes         recorded outcomes by status (delivered, pending, failed, uncertain, expired)
    telegram_errors  Telegram's error codes, or network, connect ... for a transport failure
    deferrals        sends deferred by a rate limit, by scope
    latency_mean_seconds  creation (or send_at) to Telegram's answer, delivered tasks:
                     the queue lag as the recipients see it
    in_flight, queue_length   at the end of the interval

Outcomes, errors, deferrals and latency are the differences of this process's own
Prometheus counters, so the summaries and the metrics never disagree. The due backlog is
left to `herald status`: counting it is a scan of the pending tasks, too dear to run in
every process every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client.metrics import MetricWrapperBase

from herald.metrics import DELIVERY_LATENCY, RATE_LIMIT_DEFERRALS, TASKS_FINISHED, TELEGRAM_ERRORS

log = structlog.get_logger(__name__)

# (logger, structlog event or the start of a stdlib message) of each per-message INFO line.
# Herald's own are listed beside taskiq's so that one place says what a worker logs per
# message; a line added to the pipeline later belongs here too (tests/delivery/test_worker_logs.py).
PER_MESSAGE_LINES: tuple[tuple[str, str], ...] = (
    ("taskiq.receiver.receiver", "Executing task"),
    ("herald.delivery.pipeline", "task_recorded"),
    ("herald.delivery.pipeline", "task_expired"),
)


class _ToDebug(logging.Filter):
    """Turns matching INFO records into DEBUG ones, dropped unless DEBUG is on."""

    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not self._matches(record.msg):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        if isinstance(record.msg, dict):
            # structlog added its level before handing the record over.
            record.msg["level"] = "debug"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)

    def _matches(self, msg: object) -> bool:
        if isinstance(msg, dict):
            return msg.get("event") in self.starts
        return isinstance(msg, str) and msg.startswith(self.starts)


def demote_per_message_lines() -> None:
    """Install the filters (once, in the main process: the worker processes inherit them)."""
    by_logger: dict[str, list[str]] = {}
    for name, start in PER_MESSAGE_LINES:
        by_logger.setdefault(name, []).append(start)
    for name, starts in by_logger.items():
        target = logging.getLogger(name)
        if not any(isinstance(f, _ToDebug) for f in target.filters):
            target.addFilter(_ToDebug(tuple(starts)))
            _skip_before_the_record(target, tuple(starts))


def _skip_before_the_record(target: logging.Logger, starts: tuple[str, ...]) -> None:
    """A library's per-message INFO line (taskiq's "Executing task ...") is not even made
    while DEBUG is off: the stdlib finds the caller's frame and builds the record before
    any filter runs, 3-5% of a worker's CPU at 2,000 messages/s (py-spy). The filter above
    still turns into DEBUG what comes another way (`log`, or DEBUG on)."""
    info = target.info

    def quiet_info(msg: object, *args: Any, **kwargs: Any) -> None:
        demoted = isinstance(msg, str) and msg.startswith(starts)
        if demoted and not target.isEnabledFor(logging.DEBUG):
            return
        info(msg, *args, **kwargs)

    target.info = quiet_info  # type: ignore[method-assign]


def _samples(metric: MetricWrapperBase, suffix: str) -> dict[str, float]:
    """This process's values of `metric` whose sample name ends in `suffix`, by label."""
    values: dict[str, float] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(suffix):
                label = next(iter(sample.labels.values()), "")
                values[label] = values.get(label, 0.0) + sample.value
    return values


def _delta(now: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    return {k: round(v - before.get(k, 0.0)) for k, v in sorted(now.items()) if v != before.get(k)}


@dataclass
class _Snapshot:
    outcomes: dict[str, float]
    errors: dict[str, float]
    deferrals: dict[str, float]
    latency: dict[str, float]

    @classmethod
    def take(cls) -> _Snapshot:
        return cls(
            _samples(TASKS_FINISHED, "_total"),
            _samples(TELEGRAM_ERRORS, "_total"),
            _samples(RATE_LIMIT_DEFERRALS, "_total"),
            {
                "sum": sum(_samples(DELIVERY_LATENCY, "_sum").values()),
                "count": sum(_samples(DELIVERY_LATENCY, "_count").values()),
            },
        )


@dataclass
class DeliverySummary:
    """Counts the messages of one worker process and logs them every `interval` seconds."""

    interval: float
    queue_length: Callable[[], Awaitable[int]]
    messages: int = 0
    nothing_due: int = 0
    errors: int = 0  # messages whose task raised (logged by taskiq with the traceback)
    in_flight: int = 0
    handled: int = 0  # since start, for the heartbeat
    _since: _Snapshot = field(default_factory=_Snapshot.take)

    def started(self) -> None:
        self.in_flight += 1

    def finished(self, result: str) -> None:
        """`result`: claimed, nothing_due (a duplicate or early hint) or error (raised)."""
        self.in_flight -= 1
        self.messages += 1
        self.handled += 1
        if result == "nothing_due":
            self.nothing_due += 1
        elif result == "error":
            self.errors += 1

    async def flush(self) -> dict[str, Any] | None:
        """Log the interval's summary, if anything happened in it; returns what was logged."""
        now = _Snapshot.take()
        before, self._since = self._since, now
        latency_count = now.latency["count"] - before.latency["count"]
        line: dict[str, Any] = {
            "messages": self.messages,
            "nothing_due": self.nothing_due,
            "errors": self.errors,
            "outcomes": _delta(now.outcomes, before.outcomes),
            "telegram_errors": _delta(now.errors, before.errors),
            "deferrals": _delta(now.deferrals, before.deferrals),
        }
        self.messages = self.nothing_due = self.errors = 0
        if not any(line.values()) and not self.in_flight:
            return None
        if latency_count:
            latency = (now.latency["sum"] - before.latency["sum"]) / latency_count
            line["latency_mean_seconds"] = round(latency, 4)
        line["in_flight"] = self.in_flight
        try:
            line["queue_length"] = await self.queue_length()
        except Exception:  # Redis away: the rest of the summary still counts
            line["queue_length"] = None
        log.info("worker_summary", interval_seconds=self.interval, **line)
        return line

    async def run(self, stop: asyncio.Event) -> None:
        """Log every `interval` until `stop`, then once more for the last partial interval."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("worker_summary_failed")
