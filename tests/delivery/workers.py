"""Real `herald worker` processes for tests: started with the test's settings, found
through the presence keys they write in Redis, stopped with a signal."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from herald.config import Settings
from herald.fleet import pid_of
from herald.keys import workers_pattern
from tests.support.processes import HERALD, Proc, start_worker
from tests.support.processes import herald_env as environment

__all__ = ["HERALD", "WorkerProcess", "herald_env", "wait_for"]


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
    settings_env: dict[str, Any] = {
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "queue_name": settings.queue_name,
        "bot_token": settings.bot_token,
        "telegram_api_url": settings.telegram_api_url,
        "log_json": "false",
    }
    return environment(**{**settings_env, **env})


class WorkerProcess:
    def __init__(self, settings: Settings, redis: Redis, log_path: Path, **env: Any) -> None:
        self.settings = settings
        self.redis = redis
        self.log_path = log_path
        self.env = herald_env(settings, **env)
        self.proc: Proc | None = None

    async def start(self, workers: int = 1, max_async_tasks: int = 100) -> WorkerProcess:
        self.proc = start_worker(
            self.env,
            self.log_path.parent,
            "--max-async-tasks",
            str(max_async_tasks),
            processes=workers,
            name=self.log_path.stem,
        )
        await wait_for(lambda: self._has(workers), 120, f"{workers} worker process(es)")
        return self

    async def _has(self, n: int) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError(f"herald worker exited with {self.proc.popen.returncode}")
        return len(await self.pids()) >= n

    async def pids(self) -> list[int]:
        pattern = workers_pattern(self.settings.queue_name)
        keys = [k async for k in self.redis.scan_iter(match=pattern)]
        values = await self.redis.mget(keys) if keys else []
        return [pid_of(v) for v in values if v is not None]

    async def stop(self, sig: int = signal.SIGTERM, within: float = 20) -> float:
        """Signal the main process; seconds until it exited."""
        assert self.proc is not None
        popen = self.proc.popen
        started = time.monotonic()
        if popen.poll() is None:
            popen.send_signal(sig)
        while popen.poll() is None:
            if time.monotonic() - started > within:
                popen.kill()
                raise TimeoutError(f"herald worker still running {within} s after {sig}")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    def kill_all(self) -> None:
        """Last resort at teardown: the main process and everything it started."""
        if self.proc is not None:
            self.proc.stop(signal.SIGKILL)
