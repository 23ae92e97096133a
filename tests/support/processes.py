"""`herald` commands as subprocesses, for tests and benchmarks: one way to build their
environment, start one, learn its address, stop it with all it started, or run it to its end.

Each process is started in a session of its own, so that stopping it reaches the processes
it started itself (uvicorn's and taskiq's workers) and a Ctrl-C in the terminal does not.

    env = herald_env(database_url=url, redis_url=REDIS_URL, queue_name=queue)
    api, base_url = start_api(env, log_dir)
    ...
    api.stop()
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from herald.devprocess import free_port

# The installed script, as an operator runs it.
HERALD = str(Path(sys.executable).with_name("herald"))


def herald_env(**settings: object) -> dict[str, str]:
    """This process's environment without a single HERALD_ variable, as on a fresh machine,
    plus `HERALD_<NAME>` for each setting given (`queue_name="q"`: `HERALD_QUEUE_NAME=q`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # a test runner's, not the child's
    env.update({f"HERALD_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def group_pids(pgid: int) -> list[int]:
    """Every live process of a process group (read from /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        rest = text.rsplit(")", 1)[1].split()
        if int(rest[2]) == pgid and rest[0] != "Z":
            pids.append(int(text.split(" ", 1)[0]))
    return sorted(pids)


@dataclass
class Proc:
    """A subprocess in its own process group, its output (stdout and stderr) in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pids(self) -> list[int]:
        return group_pids(self.popen.pid)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> list[int]:
        """Signal the whole group; returns the pids that were signalled."""
        pids = self.pids()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        return pids

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the process (as a supervisor does), wait up to `timeout`, then SIGKILL its
        group; whatever of the group outlived it is killed too. Its exit status."""
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.popen.wait()
        for pid in group_pids(self.popen.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return self.popen.returncode


def spawn(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    """Start `argv` in a new session, its output appended to `log_dir/<name>.log`."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd or log_dir,
            start_new_session=True,
        )
    return Proc(name, popen, log_path)


def _wait(proc: Proc, ready: Callable[[], str | None], timeout: float) -> str:
    """What `ready` returns once it returns something; the process's log if it never does."""
    deadline = time.monotonic() + timeout
    while (found := ready()) is None:
        if not proc.alive() or time.monotonic() > deadline:
            proc.stop(timeout=5)
            raise RuntimeError(f"herald {proc.name} did not start:\n{proc.log()[-3000:]}")
        time.sleep(0.05)
    return found


def start_api(
    env: Mapping[str, str],
    log_dir: Path,
    *args: str,
    name: str = "api",
    timeout: float = 30.0,
) -> tuple[Proc, str]:
    """`herald api --port <free> ARGS`, once /health answers; and its base URL."""
    port = free_port()
    proc = spawn(name, [HERALD, "api", "--port", str(port), *args], log_dir, env)
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> str | None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return base_url
        return None

    return proc, _wait(proc, healthy, timeout)


def start_emulator(
    log_dir: Path, *flags: str, env: Mapping[str, str] | None = None, name: str = "emulator"
) -> tuple[Proc, str]:
    """`herald emulator --port 0 FLAGS`, once it says where it listens; and its base URL."""
    proc = spawn(name, [HERALD, "emulator", "--port", "0", *flags], log_dir, env)

    def listening() -> str | None:
        found = re.search(r"listening on (http://\S+)", proc.log())
        return found.group(1) if found else None

    return proc, _wait(proc, listening, 20.0)


@contextmanager
def emulator_process(
    log_dir: Path, *flags: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[Proc, str]]:
    """`start_emulator` for the length of a block; stopped with SIGTERM after it."""
    proc, base_url = start_emulator(log_dir, *flags, env=env)
    try:
        yield proc, base_url
    finally:
        proc.stop(timeout=10)


def start_worker(
    env: Mapping[str, str],
    log_dir: Path,
    *args: str,
    processes: int = 1,
    name: str = "worker",
) -> Proc:
    """`herald worker --workers N ARGS`, at once: it is up when its heartbeats are in Redis
    (`herald.keys.workers_pattern`)."""
    return spawn(name, [HERALD, "worker", "--workers", str(processes), *args], log_dir, env)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_herald(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 30.0
) -> Finished:
    """`herald ARGS` to its end; on timeout its whole process group is killed (a worker's
    forked processes too) and the test fails with what it printed."""
    proc = subprocess.Popen(
        [HERALD, *args],
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"herald {' '.join(args)} still running after {timeout}s:\n{err[-3000:]}"
        ) from None
    return Finished(proc.returncode, out, err)


__all__ = [
    "HERALD",
    "Finished",
    "Proc",
    "emulator_process",
    "free_port",
    "group_pids",
    "herald_env",
    "run_herald",
    "spawn",
    "start_api",
    "start_emulator",
    "start_worker",
]
