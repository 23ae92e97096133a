"""How long a `herald worker` process takes from its start to taking work.

    .venv/bin/python bench/worker_startup.py [--runs 3]

Starts `herald worker --workers 1` against a fresh database and a private queue name, and
times it from the spawn to the presence key the worker writes in Redis once its resources
are open (`workers/tasks.py`), which is the moment it can claim. Then SIGTERM, and again.
What a restart after a crash costs before the process delivers again.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import time

from redis.asyncio import Redis

from bench.delivery_common import HERALD, REDIS_URL, fresh_database, herald_env, uptime
from herald.keys import all_keys_pattern, workers_pattern


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    queue = f"herald:bench:{secrets.token_hex(4)}"
    redis = Redis.from_url(REDIS_URL)
    try:
        async with fresh_database() as database_url:
            # Telegram is never called: nothing is due.
            env = herald_env(database_url, queue, "http://127.0.0.1:9")
            for _ in range(args.runs):
                started = time.monotonic()
                proc = await asyncio.create_subprocess_exec(
                    *HERALD,
                    "worker",
                    "--workers",
                    "1",
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    while not [k async for k in redis.scan_iter(match=workers_pattern(queue))]:
                        if proc.returncode is not None:
                            raise SystemExit("the worker exited before it was up")
                        await asyncio.sleep(0.02)
                    print(f"worker up after {time.monotonic() - started:.2f} s")
                finally:
                    proc.terminate()
                    await asyncio.wait_for(proc.wait(), 30)
    finally:
        keys = [k async for k in redis.scan_iter(match=all_keys_pattern(queue))]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    print(uptime())


if __name__ == "__main__":
    asyncio.run(main())
