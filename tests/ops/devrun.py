"""Drive `herald dev` as a subprocess, the way a newcomer runs it, and read what it prints."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import psutil

from herald.devprocess import free_port
from tests.support.processes import herald_env

T = TypeVar("T")
READY_LINE = "Ctrl-C stops everything"


def until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `check` until it returns something other than None (an HTTP state has no event)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class DevRun:
    proc: subprocess.Popen[str]
    log_path: Path
    banner: str
    stdout_lines: queue.Queue[str] = field(repr=False)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        cwd: Path,
        timeout: float = 150.0,
        configured: Mapping[str, str] | None = None,
    ) -> DevRun:
        """`herald dev` with no HERALD_ variable but `configured`, on free ports; returns once
        it is ready."""
        env = {**herald_env(), **(configured or {})}
        log_path = cwd / f"dev-{time.monotonic_ns()}.log"
        argv = [
            sys.executable, "-m", "herald.cli", "dev",
            "--port", str(free_port()),
            "--emulator-port", "0",
            "--data-dir", str(data_dir),
        ]  # fmt: skip
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=log, text=True
            )
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while not any(READY_LINE in line for line in seen):
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                proc.kill()
                raise AssertionError(
                    f"herald dev not ready in {timeout}s:\n{''.join(seen)}"
                ) from None
            if line == "":
                raise AssertionError(
                    f"herald dev exited ({proc.wait()}):\n{''.join(seen)}\n{log_path.read_text()}"
                )
            seen.append(line)
        return cls(proc=proc, log_path=log_path, banner="".join(seen), stdout_lines=lines)

    def _find(self, pattern: str) -> str:
        match = re.search(pattern, self.banner)
        assert match, f"{pattern!r} not in:\n{self.banner}"
        return match.group(1)

    @property
    def api_url(self) -> str:
        return self._find(r"API docs:\s+(\S+)/docs")

    @property
    def emulator_url(self) -> str:
        return self._find(r"messages it received at (\S+?)/?\n")

    @property
    def worker_metrics_url(self) -> str:
        return self._find(r", (\S+) \(worker\)")

    @property
    def token(self) -> str:
        return self._find(r"Token:\s+(\S+)")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 60.0) -> int:
        """Ctrl-C (SIGINT, as in a terminal) or another signal; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def log(self) -> str:
        return self.log_path.read_text()


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    with stream:
        for line in stream:
            lines.put(line)
    lines.put("")  # EOF
