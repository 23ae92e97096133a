"""`herald api`: the gateway under uvicorn, with limits on what a connection may hold.

The request head's size and read time are enforced by `httplimits.py`; at most
`HERALD_API_LIMIT_CONCURRENCY` connections or requests at once, beyond which uvicorn
answers 503. docs/operations.md ("The gateway's HTTP limits") gives the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn
from fastapi import FastAPI

from herald.config import ConfigError, get_settings


def app_factory() -> FastAPI:
    """For uvicorn's `--factory` (each worker process builds its own app)."""
    from herald.api.app import create_app
    from herald.logging import configure_logging

    settings = get_settings()
    configure_logging(settings, service="api")
    return create_app(settings)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="herald api", description="Run the HTTP gateway.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn processes")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if args.access_log:
        # The app factory also runs in uvicorn's worker processes: they read the environment.
        os.environ["HERALD_ACCESS_LOG"] = "true"
        get_settings.cache_clear()
    settings = get_settings()
    try:
        settings.check_secrets()
    except ConfigError as exc:
        print(f"herald api: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        "herald.api.server:app_factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # By name: each worker process imports it (and reads the limits) itself.
        http="herald.api.httplimits:LimitedHttpToolsProtocol",
        limit_concurrency=settings.api_limit_concurrency,
        access_log=settings.access_log,
        log_level=settings.log_level.lower(),
        log_config=None,  # herald.logging renders uvicorn's records too
    )
    return 0
