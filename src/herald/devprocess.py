"""Child processes of `herald dev`: started in their own process group, stopped with it;
the free ports they listen on.

Each child gets its own session so that a Ctrl-C in the terminal reaches `herald dev`
alone, which then stops the children in order (gateway first, so nothing new arrives;
then the worker, which finishes its in-flight sends). Stopping signals the whole group,
so the processes a child starts itself (taskiq's worker processes) stop too. On Linux a
child is also told to exit if `herald dev` itself dies without cleaning up (SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn(
    argv: Sequence[str], env: Mapping[str, str] | None = None, stdout: int | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session; its stderr (and by default stdout) are ours."""
    preexec: Callable[[], None] | None = _die_with_parent if sys.platform == "linux" else None
    return subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        start_new_session=True,
        preexec_fn=preexec,  # safe: dev mode starts no threads
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's choice; a tiny race until it is bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(ready: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Call `ready` until it returns True; TimeoutError naming `what` after `timeout` seconds.

    For states only visible by asking (a port that answers, a key in Redis). `ready` may
    raise to give up early, e.g. when the process it waits for has exited.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready in {timeout}s")
        time.sleep(interval)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM the child's process group, wait up to `timeout`, then SIGKILL it."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    # Grandchildren that outlived their parent still belong to the group.
    _signal_group(proc, signal.SIGKILL)
    return proc.returncode
