"""Real `herald worker` processes for tests: started with the test's settings, found
through the presence keys they write in Redis, stopped with a signal."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from redis.asyncio import Redis

from herald.config import Settings
from herald.fleet import pid_of
from herald.keys import workers_pattern

HERALD = str(Path(sys.executable).with_name("herald"))


async def wait_for(
    check: Callable[[], Awaitable[bool]], seconds: float, what: str, every: float = 0.05
) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not seen within {seconds} s")
        await asyncio.sleep(every)


def herald_env(settings: Settings, **env: Any) -> dict[str, str]:
    """The environment of a `herald` command run with `settings` (and `env` on top)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
        "HERALD_DATABASE_URL": settings.database_url,
        "HERALD_REDIS_URL": settings.redis_url,
        "HERALD_QUEUE_NAME": settings.queue_name,
        "HERALD_BOT_TOKEN": settings.bot_token,
        "HERALD_TELEGRAM_API_URL": settings.telegram_api_url,
        "HERALD_LOG_JSON": "false",
        **{f"HERALD_{k.upper()}": str(v) for k, v in env.items()},
    }


class WorkerProcess:
    def __init__(self, settings: Settings, redis: Redis, log: IO[bytes], **env: Any) -> None:
        self.settings = settings
        self.redis = redis
        self.log = log
        self.env = herald_env(settings, **env)
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, workers: int = 1, max_async_tasks: int = 100) -> WorkerProcess:
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [
                HERALD,
                "worker",
                "--workers",
                str(workers),
                "--max-async-tasks",
                str(max_async_tasks),
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        await wait_for(lambda: self._has(workers), 120, f"{workers} worker process(es)")
        return self

    async def _has(self, n: int) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"herald worker exited with {self.proc.returncode}")
        return len(await self.pids()) >= n

    async def pids(self) -> list[int]:
        pattern = workers_pattern(self.settings.queue_name)
        keys = [k async for k in self.redis.scan_iter(match=pattern)]
        values = await self.redis.mget(keys) if keys else []
        return [pid_of(v) for v in values if v is not None]

    async def stop(self, sig: int = signal.SIGTERM, within: float = 20) -> float:
        """Signal the main process; seconds until it exited."""
        assert self.proc is not None
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        while self.proc.poll() is None:
            if time.monotonic() - started > within:
                self.proc.kill()
                raise TimeoutError(f"herald worker still running {within} s after {sig}")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    def kill_all(self) -> None:
        """Last resort at teardown: the main process and its children."""
        if self.proc is not None and self.proc.poll() is None:
            for pid in _children(self.proc.pid):
                os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]
