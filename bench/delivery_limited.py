"""Sustained deliveries at Telegram's limits: at least 29/s for 60 s at 30/s, and no 429.

    .venv/bin/python bench/delivery_limited.py [--seconds 60] [--workers 2]
        [--backlog N] [--max-wait SECONDS]

The emulator enforces Telegram's limits (30/s in total, 1/s per chat, 20/min per group)
and Herald runs with the same defaults. A backlog of (seconds + 10) x 30 tasks (or
`--backlog`) over 500 chats is due at once; `herald worker --workers N` drains it. From
the emulator's log: the deliveries per second over `--seconds` (from 2 s after the first
delivery), the slowest single second, and the number of 429 answers. From the workers'
metrics: the deferrals per second (claims that found no slot within the horizon,
`--max-wait` sets `HERALD_RATE_MAX_WAIT_SECONDS`), the price of a backlog. Prints `uptime`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from redis.asyncio import Redis

from bench.delivery_common import (
    REDIS_URL,
    emulator,
    fresh_database,
    herald_env,
    insert_tasks,
    uptime,
    wait_workers,
    worker,
)
from bench.stack import free_port
from herald.emulator.remote import RemoteEmulator
from herald.keys import all_keys_pattern
from herald.queue import RedisQueue


async def deferrals(port: int) -> float:
    """herald_rate_limit_deferrals_total, every scope, from the workers' metrics."""

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    text = await asyncio.to_thread(scrape)
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("herald_rate_limit_deferrals_total{")
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backlog", type=int, default=0, help="tasks due at once")
    parser.add_argument("--max-wait", type=float, default=None, help="horizon, seconds")
    args = parser.parse_args()
    n = args.backlog or (args.seconds + 10) * 30
    extra = {} if args.max_wait is None else {"rate_max_wait_seconds": args.max_wait}
    metrics_port = free_port()
    queue = f"herald:bench:{secrets.token_hex(4)}"
    redis = Redis.from_url(REDIS_URL)
    async with fresh_database() as database_url:
        with (
            emulator(limits=True) as base_url,
            tempfile.TemporaryDirectory() as tmp,
        ):
            env = herald_env(database_url, queue, base_url, **extra)
            ids = await insert_tasks(database_url, n, chats=500)
            with worker(env, Path(tmp) / "w.log", workers=args.workers, metrics_port=metrics_port):
                await wait_workers(redis, queue, args.workers)
                task_queue = RedisQueue(redis, queue)
                for i in range(0, n, 1000):
                    await task_queue.push([(task_id, None) for task_id in ids[i : i + 1000]])
                async with RemoteEmulator(base_url) as remote:
                    await remote.wait_messages(1, timeout=60)
                    first = (await remote.messages())[0]["time"]
                    end = first + 2 + args.seconds
                    await asyncio.sleep(max(0.0, first + 2 - time.time()))
                    deferrals_start = await deferrals(metrics_port)
                    await asyncio.sleep(max(0.0, end - time.time()))
                    deferred = await deferrals(metrics_port) - deferrals_start
                    await asyncio.sleep(1)
                    messages = await remote.messages()
                    received = await remote.received()
            keys = [k async for k in redis.scan_iter(match=all_keys_pattern(queue))]
            if keys:
                await redis.delete(*keys)
    await redis.aclose()
    start = first + 2
    in_window = [m["time"] for m in messages if start <= m["time"] < start + args.seconds]
    per_second = Counter(int(t - start) for t in in_window)
    too_many = sum(1 for r in received if r.get("status") == 429)
    print(f"{len(in_window) / args.seconds:.2f} deliveries/s over {args.seconds} s")
    print(f"slowest second: {min(per_second.get(s, 0) for s in range(args.seconds))}")
    print(f"fastest second: {max(per_second.values())}")
    print(f"429 answers: {too_many} of {len(received)} requests")
    print(f"deferrals: {deferred / args.seconds:,.0f}/s ({n} tasks due at once)")
    print(uptime())


if __name__ == "__main__":
    asyncio.run(main())
