"""A worker process stops when its `herald worker` main process is gone.

taskiq forks the worker processes and signals them only from the main process's own
shutdown path. A main killed with SIGKILL (or by the OOM killer) cannot, and its worker
processes used to run on under init for as long as nobody noticed, taking messages,
unseen by whatever restarts the main.

Two guards, both ending in the SIGTERM the main would have sent, so the process stops the
usual way: no more fetching, the in-flight sends finish and are recorded, then it exits.
- Linux's `PR_SET_PDEATHSIG`: the kernel sends SIGTERM the moment the parent dies. It
  fires on the death of the parent *thread* that forked the child. taskiq forks from the
  main thread today, but that is taskiq's choice, not Herald's; hence
- a watch: every heartbeat interval the process compares its parent's pid with the
  main's. Re-parented (to init or a subreaper), it signals itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys

import structlog

log = structlog.get_logger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Set in the main process before it forks; the worker processes inherit them.
_main_pid: int | None = None
_processes = 1


def remember_main(processes: int) -> None:
    """Called by `herald worker` before it starts its `processes` worker processes."""
    global _main_pid, _processes
    _main_pid, _processes = os.getpid(), processes


def main_pid() -> int:
    # Under the spawn start method (macOS) nothing is inherited: the parent is the main.
    return _main_pid if _main_pid is not None else os.getppid()


def processes() -> int:
    return _processes


def set_parent_death_signal(sig: signal.Signals = signal.SIGTERM) -> bool:
    """Ask the kernel for `sig` when the parent dies; False where there is no prctl."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0


def orphaned() -> bool:
    return os.getppid() != main_pid()


async def watch(stop: asyncio.Event, interval: float) -> None:
    """Until `stop`: if the main process is gone, stop this one as SIGTERM does.

    The first check runs at once, which also covers a main that died between the fork
    and `set_parent_death_signal` (the kernel would not signal then).
    """
    while not stop.is_set():
        if orphaned():
            log.warning("worker_orphaned", main_pid=main_pid(), parent_pid=os.getppid())
            os.kill(os.getpid(), signal.SIGTERM)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
