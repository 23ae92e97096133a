"""Structured logs: one JSON object a line, with the correlation id of the request or job.

structlog renders, and the standard library's loggers (uvicorn, taskiq, aiogram, SQLAlchemy)
go through the same formatter, so a process prints one format only. `HERALD_LOG_JSON=false`
gives coloured key=value lines for a terminal instead.

The correlation id follows one request from the gateway into the worker:
- the gateway binds it per request (`herald.api.correlation`: the caller's `X-Request-ID`
  when well formed, else a new one) and echoes it in the response;
- the gateway's enqueue puts it in the queue message's `correlation_id` label;
- the worker binds the label again while it runs the task (`bind_job_context`, or
  `TaskiqCorrelationMiddleware` for taskiq's own receiver).
Every log line in between carries it, through `structlog.contextvars`.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import structlog
import structlog.tracebacks
from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from herald.config import Settings

CORRELATION_LABEL = "correlation_id"
# A caller's id is accepted only when it cannot forge log structure or flood a line.
_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def configure_logging(settings: Settings, *, service: str | None = None) -> None:
    """Route structlog and the standard library's logging to one renderer on stderr.

    `service` (api, worker, ...) is added to every line so that the interleaved output of
    `herald dev` or a log collector can tell processes apart. Safe to call more than once.
    """
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if service:
        shared.append(_add_service(service))
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    final: list[structlog.types.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
    ]
    if settings.log_json:
        # Without frame locals: they may hold secrets (tokens, message texts).
        final.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    final.append(renderer)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Servers that install their own handlers would print twice or in another format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "taskiq"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the `sys.stderr` of each moment, which test runners and tools replace."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # under the handler's lock: `Handler.handle` holds it
        super().emit(record)


def _add_service(service: str) -> structlog.types.Processor:
    def add(_: Any, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        event.setdefault("service", service)
        return event

    return add


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def accept_correlation_id(value: str | None) -> str:
    """The caller's id if well formed, else a fresh one."""
    if value and _WELL_FORMED_ID.fullmatch(value):
        return value
    return new_correlation_id()


def current_correlation_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get(CORRELATION_LABEL)
    return str(value) if value is not None else None


def bind_job_context(labels: Mapping[str, Any]) -> str:
    """Replace this context's log variables with the queue message's correlation id.

    Call it at the start of each job, in the asyncio task that runs the job only.
    """
    label = labels.get(CORRELATION_LABEL)
    correlation_id = accept_correlation_id(None if label is None else str(label))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
    return correlation_id


class TaskiqCorrelationMiddleware(TaskiqMiddleware):
    """Worker side: bind the message's correlation id (or a new one) while its task runs.

    taskiq runs each message in its own asyncio task, so what is bound here is seen by the
    task's code and by nothing else.
    """

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        bind_job_context(message.labels)
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        structlog.contextvars.clear_contextvars()
