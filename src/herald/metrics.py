"""Prometheus metrics.

Two kinds, by where the truth lives:
- Events counted by the process that sees them (tasks created or replayed at intake,
  Telegram errors, delivery latency, rate-limit deferrals). The gateway is one process;
  the worker runs several, so `herald worker` sets PROMETHEUS_MULTIPROC_DIR before it starts
  them and serves their merged values itself (`serve_worker_metrics`).
- State read from PostgreSQL (tasks by status, due backlog): exact whatever the number of
  processes, and it survives restarts. Each gateway process refreshes these gauges in the
  background every `HERALD_METRICS_REFRESH_SECONDS` (`keep_state_gauges_fresh`), so a
  scrape runs no query: /metrics is unauthenticated, and the count takes 75 ms at 200,000
  tasks, which a scraper (or anyone) could otherwise make the database pay at will. With
  PostgreSQL away, a scrape still answers with the last values, and
  `herald_tasks_refreshed_timestamp_seconds` tells how old they are.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

from herald.callbacks.endpoints import backlog as callback_backlog
from herald.db.pool import Executor
from herald.db.stats import count_tasks

__all__ = ["CONTENT_TYPE_LATEST", "keep_state_gauges_fresh", "render_gateway_metrics"]

logger = structlog.get_logger(__name__)

# Intake (gateway).
TASKS_CREATED = Counter("herald_tasks_created_total", "Tasks accepted at intake.")
TASKS_REPLAYED = Counter(
    "herald_tasks_replayed_total", "Intake requests answered from an existing task."
)
INTAKE_REFUSED = Counter(
    "herald_intake_refused_total", "Intake requests refused before storing.", ["reason"]
)
UPDATES_RECEIVED = Counter(
    "herald_telegram_updates_total",
    "Telegram updates received (webhook or polling): stored, repeated, or refused.",
    ["result"],
)

# Delivery (worker).
TASKS_FINISHED = Counter(
    "herald_deliveries_total", "Delivery attempts by outcome recorded.", ["outcome"]
)
DELIVERY_LATENCY = Histogram(
    "herald_delivery_latency_seconds",
    "From task creation (or send_at) to Telegram's answer for delivered tasks.",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
TELEGRAM_ERRORS = Counter(
    "herald_telegram_errors_total", "Telegram error answers and transport failures.", ["code"]
)
RATE_LIMIT_DEFERRALS = Counter(
    "herald_rate_limit_deferrals_total", "Sends deferred for a rate limit.", ["scope"]
)
RATE_LIMIT_WAIT = Histogram(
    "herald_rate_limit_wait_seconds",
    "How long a claimed task waited in its worker for its reserved rate-limit slot.",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)

# Status callbacks (worker), by client: an attempt that succeeded, one that failed and
# is due again, an event given up after the schedule's last attempt; endpoints paused.
CALLBACKS_SENT = Counter("herald_callbacks_sent_total", "Callback events delivered.", ["client"])
CALLBACKS_RETRIED = Counter(
    "herald_callbacks_retried_total", "Callback attempts that failed and will be retried.",
    ["client"],
)  # fmt: skip
CALLBACKS_FAILED = Counter(
    "herald_callbacks_failed_total", "Callback events failed after their last attempt.",
    ["client"],
)  # fmt: skip
CALLBACK_ENDPOINTS_PAUSED = Counter(
    "herald_callback_endpoint_pauses_total",
    "Endpoints paused after failing every attempt for HERALD_CALLBACK_PAUSE_AFTER_SECONDS.",
    ["client"],
)

# State from PostgreSQL (gateway, refreshed in the background).
TASKS_BY_STATUS = Gauge("herald_tasks", "Tasks in the database by status.", ["status"])
TASKS_DUE = Gauge("herald_tasks_due", "Pending tasks whose time has come (the backlog).")
TASKS_REFRESHED = Gauge(
    "herald_tasks_refreshed_timestamp_seconds",
    "When the last reading of herald_tasks and herald_tasks_due began (Unix time).",
)

CALLBACK_OLDEST = Gauge(
    "herald_callback_oldest_undelivered_seconds",
    "Age of each client's oldest callback event not yet delivered nor failed (0: none).",
    ["client"],
)
CALLBACK_WAITING = Gauge(
    "herald_callback_events_waiting", "Callback events not yet delivered nor failed.", ["client"]
)
CALLBACK_PAUSED = Gauge(
    "herald_callback_endpoint_paused", "1 while a client's endpoint is paused.", ["client"]
)


async def refresh_state_gauges(pool: Executor) -> None:
    """Two queries: counts per status and the due backlog; the callback backlogs."""
    started = time.time()  # the values are as of (at least) this moment
    counts = await count_tasks(pool)
    for status, n in counts.by_status.items():
        TASKS_BY_STATUS.labels(status=status.value).set(n)
    TASKS_DUE.set(counts.due)
    for b in await callback_backlog(pool):
        CALLBACK_OLDEST.labels(client=b.client).set(b.oldest_seconds)
        CALLBACK_WAITING.labels(client=b.client).set(b.waiting)
        CALLBACK_PAUSED.labels(client=b.client).set(1 if b.paused else 0)
    TASKS_REFRESHED.set(started)


async def keep_state_gauges_fresh(pool: Executor, interval: float) -> None:
    """Refresh the state gauges now, then every `interval` seconds, until cancelled.

    A failed refresh keeps the last values (and their timestamp) and tries again at the
    next turn; it logs the error's class only (a driver's message may quote the URL).
    """
    while True:
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 a cancel that lands as the
            # refresh finishes is swallowed by wait_for, and the lifespan's shutdown then
            # waited on this loop forever (seen as a hung test teardown).
            async with asyncio.timeout(max(interval, 10.0)):
                await refresh_state_gauges(pool)
        except Exception as exc:
            logger.warning("metrics.refresh_failed", error=type(exc).__name__)
        await asyncio.sleep(interval)


def render_gateway_metrics() -> bytes:
    """The gateway's metrics as they are: no query (the state gauges are kept fresh)."""
    return generate_latest()


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> Path:
    """Give worker processes a fresh shared directory for their metric files.

    Must run before the worker processes import prometheus_client: they read the
    variable at import time.
    """
    existing = os.environ.get(MULTIPROC_ENV)
    path = Path(existing) if existing else Path(tempfile.mkdtemp(prefix="herald-metrics-"))
    if existing:
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def serve_worker_metrics(host: str, port: int) -> None:
    """Serve the merged metrics of every worker process on host:port (a daemon thread)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)
