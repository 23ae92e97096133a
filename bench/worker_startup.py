"""How long a `herald worker` takes from its spawn to taking work, and to its first delivery.

    .venv/bin/python bench/worker_startup.py [--runs 5] [--importtime FILE]

Starts `herald worker --workers 1` against a fresh database, a private queue name and the
emulator, and times it from the spawn to:
- `ready`: the presence key the worker process writes in Redis once its resources are
  open (`worker/runtime.py`), the moment it can claim;
- `delivered`: one task, due and hinted in the queue before the spawn, `delivered` in
  PostgreSQL: the claim, aiogram's request and the parse of Telegram's answer included.
`cpu` is the user+sys time the worker's processes (the main one and the forked one) had
used at `ready`: less sensitive to other load on the machine than the wall times.
Then SIGTERM, and again. What a restart after a crash, or a newly scaled worker, costs
before it delivers. `uptime` after each run: a busy machine stretches every figure.

`--importtime FILE`: one more run with `-X importtime`, its report in FILE, and the modules
that cost most (their own time, and the packages by total) printed.

`--phases`: no worker; the CPU time of each step of what `herald worker` imports before it
forks, in its order and with its collector off, in fresh interpreters (the least of
`--runs`): where the start-up's CPU goes, with the load on the machine counting less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from bench.delivery_common import (
    HERALD,
    REDIS_URL,
    emulator,
    fresh_database,
    herald_env,
    insert_tasks,
    uptime,
)
from herald.db.pool import asyncpg_dsn
from herald.keys import all_keys_pattern, workers_pattern
from herald.queue import RedisQueue

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# `herald worker`'s imports in its order: the command line and its checks, the runner,
# the tasks (through aiogram, then the sender's builds), then taskiq's worker.
PHASES = [
    "herald.cli",
    "herald.preflight",
    "herald.worker.runner",
    "aiogram",
    "herald.telegram.sender",
    "workers.tasks",
    "taskiq.cli.worker.run",
]
_PHASES_SCRIPT = """
import gc, importlib, json, sys, time
gc.disable()
spent = {}
for name in sys.argv[1:]:
    started = time.process_time()
    importlib.import_module(name)
    spent[name] = time.process_time() - started
print(json.dumps(spent))
"""


def load() -> str:
    """The 1-minute load average."""
    return Path("/proc/loadavg").read_text().split()[0]


def cpu_seconds(pid: int) -> float:
    """user+sys of `pid` and of its live descendants, from /proc."""
    total = 0.0
    pending = [pid]
    while pending:
        p = pending.pop()
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except FileNotFoundError:
            continue
        fields = stat.rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        pending.extend(int(c) for c in children)
    return total


async def one_run(
    env: dict[str, str], database_url: str, queue: str, redis: Redis, stderr_to: Path | None
) -> tuple[float, float, float]:
    """(ready, delivered, cpu at ready) of one spawn."""
    [task_id] = await insert_tasks(database_url, 1, chats=1, key_prefix=secrets.token_hex(4))
    await RedisQueue(redis, queue).push([(task_id, None)])
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    stderr = stderr_to.open("wb") if stderr_to is not None else None
    if stderr_to is not None:
        env = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    try:
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *HERALD,
            "worker",
            "--workers",
            "1",
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr or subprocess.DEVNULL,
        )
        ready = delivered = cpu = 0.0
        try:
            while not (ready and delivered):
                if proc.returncode is not None:
                    raise SystemExit("the worker exited before it was up")
                now = time.monotonic() - started
                if not ready and [k async for k in redis.scan_iter(match=workers_pattern(queue))]:
                    ready, cpu = now, cpu_seconds(proc.pid)
                if not delivered and await conn.fetchval(
                    "SELECT status = 'delivered' FROM tasks WHERE id = $1", task_id
                ):
                    delivered = now
                await asyncio.sleep(0.01)
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
    finally:
        await conn.close()
        if stderr is not None:
            stderr.close()
    return ready, delivered, cpu


def summarize_importtime(path: Path) -> None:
    own: list[tuple[int, str]] = []
    packages: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        us, name = int(self_us), name.strip()
        own.append((us, name))
        packages[name.split(".")[0]] += us
        total += us
    print(f"imports: {total / 1e6:.2f} s in all (their own times, -X importtime inflates them)")
    print("by package: " + ", ".join(f"{p} {t / 1e6:.2f}" for p, t in packages.most_common(10)))
    print("modules: " + ", ".join(f"{n} {t / 1e6:.2f}" for t, n in sorted(own, reverse=True)[:8]))


def phases(runs: int) -> None:
    best: dict[str, float] = {}
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _PHASES_SCRIPT, *PHASES],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        for name, spent in json.loads(out).items():
            best[name] = min(best.get(name, spent), spent)
    print(", ".join(f"{name} {spent:.2f}" for name, spent in best.items()), end="")
    print(f"; in all {sum(best.values()):.2f} s cpu   load {load()}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--importtime", type=Path, default=None)
    parser.add_argument("--phases", action="store_true")
    args = parser.parse_args()
    if args.phases:
        phases(args.runs)
        return
    queue = f"herald:bench:{secrets.token_hex(4)}"
    redis = Redis.from_url(REDIS_URL)
    try:
        async with fresh_database() as database_url:
            with emulator(limits=False) as api_url:
                env = herald_env(database_url, queue, api_url)
                for _ in range(args.runs):
                    ready, delivered, cpu = await one_run(env, database_url, queue, redis, None)
                    print(
                        f"ready {ready:.2f} s, delivered {delivered:.2f} s, cpu at ready "
                        f"{cpu:.2f} s   load {load()}"
                    )
                if args.importtime is not None:
                    await one_run(env, database_url, queue, redis, args.importtime)
                    summarize_importtime(args.importtime)
    finally:
        keys = [k async for k in redis.scan_iter(match=all_keys_pattern(queue))]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    print(uptime())


if __name__ == "__main__":
    asyncio.run(main())
