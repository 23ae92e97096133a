"""Run `herald` commands as an operator would: the installed script, a controlled environment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.ops.devrun import no_herald_env

HERALD = str(Path(sys.executable).parent / "herald")


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def herald_env(**variables: str) -> dict[str, str]:
    """This process's environment without HERALD_ variables, plus `variables`."""
    return {**no_herald_env(), **variables}


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
