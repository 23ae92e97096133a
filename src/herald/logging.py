"""Structured logs: one JSON object a line, with the correlation id of the request or job.

structlog renders, and the standard library's loggers (uvicorn, taskiq, aiogram, SQLAlchemy)
go through the same formatter, so a process prints one format only. `HERALD_LOG_JSON=false`
gives coloured key=value lines for a terminal instead.

The correlation id follows one request from the gateway into the worker, and every log
line on the way carries it through `structlog.contextvars`:
- the gateway binds it per request (`herald.api.correlation`: the caller's `X-Request-ID`
  when well formed, else a new one), echoes it in the response and stores it on the task;
- the queue message carries it in its `correlation_id` label, which the worker binds
  before the task runs (`CorrelationMiddleware`);
- the worker binds the task's stored id when it claims the task (`herald.delivery.pipeline`),
  so a retry or a sweeper's re-enqueue, long after the request, still logs under it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
import structlog.tracebacks
from taskiq import TaskiqMessage, TaskiqMiddleware

from herald.config import Settings
from herald.telegram.redact import redact

CORRELATION_LABEL = "correlation_id"


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
    colors = sys.stderr.isatty()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=_console_tracebacks(colors)
        )
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
    final.append(_redact_tokens(settings))

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
    # uvicorn logs a request only when its access logger has a handler, its own or the
    # root's through propagation: without `HERALD_ACCESS_LOG` it has neither, and the
    # request path skips formatting the line altogether.
    logging.getLogger("uvicorn.access").propagate = settings.access_log


def _console_tracebacks(colors: bool) -> structlog.typing.ExceptionRenderer:
    """Tracebacks for a terminal, never with frame locals.

    structlog's default is rich's traceback with `show_locals=True` when rich is installed
    (better-exceptions', also with locals, otherwise): a frame holding the JWT secret or
    the bot token printed it. Rich's layout without the locals, or the plain traceback.
    """
    try:
        import rich  # noqa: F401
    except ImportError:
        return structlog.dev.plain_traceback
    return structlog.dev.RichTracebackFormatter(
        show_locals=False, color_system="truecolor" if colors else None
    )


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the `sys.stderr` of each moment, which test runners and tools replace."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # under the handler's lock: `Handler.handle` holds it
        super().emit(record)


def _redact_tokens(settings: Settings) -> structlog.types.Processor:
    """Runs after the renderer, on the finished line, so that no field, message or
    traceback (aiohttp quotes URLs, which hold the bot token) prints a bot token."""
    secrets = (settings.bot_token,)

    def redact_line(_: Any, __: str, line: Any) -> Any:
        return redact(line, secrets) if isinstance(line, str) else line

    return redact_line


def _add_service(service: str) -> structlog.types.Processor:
    def add(_: Any, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        event.setdefault("service", service)
        return event

    return add


class CorrelationMiddleware(TaskiqMiddleware):
    """Worker side: bind the queue message's `correlation_id` label before its task runs.

    taskiq's own lines about the message ("Executing task ...") then carry the request's
    id too. taskiq runs each message in its own asyncio task, so the binding stays there.
    """

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        structlog.contextvars.clear_contextvars()
        label = message.labels.get(CORRELATION_LABEL)
        if label:
            structlog.contextvars.bind_contextvars(correlation_id=str(label))
        return message
