"""Sustained deliveries at Telegram's limits: at least 29/s for 60 s at 30/s, and no 429.

    .venv/bin/python bench/delivery_limited.py [--seconds 60] [--workers 2]

The emulator enforces Telegram's limits (30/s in total, 1/s per chat, 20/min per group)
and Herald runs with the same defaults. A backlog of (seconds + 10) x 30 tasks over 500
chats is due at once; `herald worker --workers N` drains it. From the emulator's log: the
deliveries per second over `--seconds` (from 2 s after the first delivery), the slowest
single second, and the number of 429 answers. Prints `uptime`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
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
from herald.config import Settings
from herald.delivery.hints import Hints
from herald.emulator.remote import RemoteEmulator
from workers.broker import make_broker


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    n = (args.seconds + 10) * 30
    queue = f"herald:bench:{secrets.token_hex(4)}"
    redis = Redis.from_url(REDIS_URL)
    async with fresh_database() as database_url:
        with (
            emulator(limits=True) as base_url,
            tempfile.TemporaryDirectory() as tmp,
        ):
            env = herald_env(database_url, queue, base_url)
            ids = await insert_tasks(database_url, n, chats=500)
            with worker(env, Path(tmp) / "w.log", workers=args.workers):
                await wait_workers(redis, queue, args.workers)
                hints = Hints(redis, make_broker(Settings(_env_file=None, queue_name=queue)), queue)
                for i in range(0, n, 1000):
                    await hints.push([(task_id, None) for task_id in ids[i : i + 1000]])
                async with RemoteEmulator(base_url) as remote:
                    await remote.wait_messages(1, timeout=60)
                    first = (await remote.messages())[0]["time"]
                    end = first + 2 + args.seconds
                    await asyncio.sleep(max(0.0, end + 1 - time.time()))
                    messages = await remote.messages()
                    received = await remote.received()
            keys = [k async for k in redis.scan_iter(match=f"{queue}*")]
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
    print(uptime())


if __name__ == "__main__":
    asyncio.run(main())
