"""`herald worker`: taskiq's worker for Herald's broker and tasks, with Herald's defaults.

    herald worker [--workers N] [--max-async-tasks M] [--metrics-port P]

N processes (default 2), each running up to M deliveries at once (default 100) and the
sweeper. SIGTERM or SIGINT stops fetching, lets the running sends finish and record their
outcome (at most `HERALD_TELEGRAM_TIMEOUT` plus a rate-limit wait), then exits. A process
that dies is restarted by taskiq's process manager; if the main process dies, its worker
processes stop as on SIGTERM (`herald.worker.lifeline`).

taskiq's worker runs on the entry point in `workers/`, named here as taskiq's CLI would
be given it: the broker instance and the module of the task functions.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import tempfile
from collections.abc import Sequence

from herald.config import CLAIM_PATIENCE_SECONDS, get_settings
from herald.logging import configure_logging

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BROKER = "workers.broker:broker"
TASKS_MODULE = "workers.tasks"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald worker", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--max-async-tasks", type=int, default=100, help="concurrent deliveries per process"
    )
    parser.add_argument("--metrics-port", type=int, default=None, help="serve /metrics here")
    parser.add_argument("--metrics-host", default="127.0.0.1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.workers < 1 or args.max_async_tasks < 1:
        _parser().error("--workers and --max-async-tasks must be at least 1")
    settings = get_settings()
    # Before the fork: the worker processes inherit the handlers (taskiq's own
    # logging.basicConfig is switched off below).
    configure_logging(settings, service="worker")
    # The worker processes are forked from this one: prometheus_client must see the
    # directory before anything here imports it, or their counters stay private.
    os.environ.setdefault(MULTIPROC_ENV, tempfile.mkdtemp(prefix="herald-metrics-"))
    from herald.metrics import prepare_multiprocess_dir, serve_worker_metrics

    prepare_multiprocess_dir()
    from herald.worker.summary import demote_per_message_lines

    if not settings.dev_mode:
        # `herald dev` keeps them: a developer's few messages, each followed by eye.
        demote_per_message_lines()
    if args.metrics_port is not None:
        serve_worker_metrics(args.metrics_host, args.metrics_port)

    from taskiq.cli.common_args import LogLevel
    from taskiq.cli.worker.args import WorkerArgs
    from taskiq.cli.worker.run import run_worker

    # Import the tasks (and aiogram, the largest) once, here: the forked processes inherit
    # them and start at once, also when one is restarted. Without cycle collections while
    # they load (as in `herald.cli`); then frozen, so that the collection each process
    # makes once it is up (`worker/runtime.py`) skips them, and their pages stay shared.
    gc.disable()
    try:
        importlib.import_module(TASKS_MODULE)
        gc.freeze()
    finally:
        gc.enable()
    from herald.worker import lifeline

    lifeline.remember_main(args.workers)

    worker_args = WorkerArgs(
        broker=BROKER,
        modules=[TASKS_MODULE],
        workers=args.workers,
        max_async_tasks=args.max_async_tasks,
        # The task takes one int from JSON: pydantic's check of it per message costs CPU.
        no_parse=True,
        # In-flight sends end within the Telegram timeout; a reserved rate-limit slot
        # may add its wait, and a message may wait for room to claim (with limits on,
        # `Deliverer._claim`). Past that the process exits and the sweeper takes over.
        wait_tasks_timeout=settings.telegram_timeout
        + settings.rate_max_wait_seconds
        + (CLAIM_PATIENCE_SECONDS if settings.rate_global_per_second else 0)
        + 1,
        shutdown_timeout=5,
        configure_logging=False,
        log_level=LogLevel.__members__.get(settings.log_level.upper(), LogLevel.INFO),
    )
    status = run_worker(worker_args)
    return 0 if status is None else int(status)
