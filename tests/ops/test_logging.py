"""JSON logs with the correlation id, from structlog and from the standard library alike."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from taskiq import InMemoryBroker

from herald.config import Settings
from herald.logging import CORRELATION_LABEL, CorrelationMiddleware, configure_logging


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """JSON logging to the captured stderr; the previous configuration restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    settings = Settings(_env_file=None, log_json=True, log_level="INFO")  # type: ignore[call-arg]
    configure_logging(settings, service="worker")
    yield capsys
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:], root.level = saved


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    err = capsys.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_structlog_events_are_json_with_context(json_logs: pytest.CaptureFixture[str]) -> None:
    structlog.contextvars.bind_contextvars(correlation_id="req-1")
    structlog.get_logger("herald.test").info("task_created", task_id=7)
    [record] = lines(json_logs)
    assert record["event"] == "task_created"
    assert record["task_id"] == 7
    assert record["correlation_id"] == "req-1"
    assert record["level"] == "info"
    assert record["service"] == "worker"
    assert record["logger"] == "herald.test"
    assert record["timestamp"].endswith("Z")


def test_standard_library_loggers_render_the_same(json_logs: pytest.CaptureFixture[str]) -> None:
    structlog.contextvars.bind_contextvars(correlation_id="req-2")
    logging.getLogger("uvicorn.error").warning("port %d busy", 8000)
    logging.getLogger("herald.test").debug("below the level: not printed")
    [record] = lines(json_logs)
    assert record["event"] == "port 8000 busy"
    assert record["level"] == "warning"
    assert record["correlation_id"] == "req-2"


def test_exceptions_are_structured(json_logs: pytest.CaptureFixture[str]) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("herald.test").exception("send_failed")
    [record] = lines(json_logs)
    assert record["event"] == "send_failed"
    assert record["exception"][0]["exc_type"] == "ValueError"


async def test_worker_binds_each_messages_correlation_id() -> None:
    broker = InMemoryBroker().with_middlewares(CorrelationMiddleware())
    seen: dict[int, object] = {}

    @broker.task(task_name="ops.test.deliver")
    async def deliver(task_id: int) -> None:
        await asyncio.sleep(0.01)  # let the jobs interleave
        seen[task_id] = structlog.contextvars.get_contextvars().get("correlation_id")

    await broker.startup()
    structlog.contextvars.bind_contextvars(correlation_id="producer-side")
    try:
        await deliver.kicker().with_labels(**{CORRELATION_LABEL: "req-a"}).kiq(1)
        await deliver.kicker().with_labels(**{CORRELATION_LABEL: "req-b"}).kiq(2)
        await deliver.kicker().kiq(3)  # re-enqueued by the sweeper: no request behind it
        await broker.wait_all()
    finally:
        await broker.shutdown()
        structlog.contextvars.clear_contextvars()
    assert seen == {1: "req-a", 2: "req-b", 3: None}


def _fail_holding(secret: str) -> None:
    jwt_secret = secret  # a frame local, as in the gateway's auth code
    raise RuntimeError(f"failed with a key of {len(jwt_secret)} characters")


def test_console_tracebacks_show_no_local_variables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Finding 11.6: console logs (dev mode's default) printed frame locals through rich."""
    import importlib.util

    # The real path: structlog renders console tracebacks with rich when it is installed
    # (it is in the dev extra), and rich's default shows every frame's locals.
    assert importlib.util.find_spec("rich") is not None
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    settings = Settings(_env_file=None, log_json=False, log_level="INFO")  # type: ignore[call-arg]
    configure_logging(settings, service="api")
    secret = secrets.token_hex(32)  # not a literal: rich also prints the source lines
    try:
        try:
            _fail_holding(secret)
        except RuntimeError:
            structlog.get_logger("herald.test").exception("verification_failed")
        try:
            _fail_holding(secret)
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("from the standard library")
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = saved
    err = capsys.readouterr().err
    assert err.count("failed with a key of 64 characters") == 2  # the tracebacks are there
    assert "_fail_holding" in err
    assert secret[:12] not in err  # rich shortens long strings: look for their start
