"""Deliveries per second of one worker process, against raw aiogram in the same run.

    .venv/bin/python bench/delivery_throughput.py [--tasks 10000] [--raw 5000] [--log-level INFO]

The emulator runs with limits off (`herald emulator --no-limits`), as does Herald
(`HERALD_RATE_*=0`). Raw aiogram: one process, 100 concurrent `bot.send_message` calls
through the emulator, measured before and after Herald. Herald: `--tasks` pending tasks
over 1,000 chats, then one `herald worker --workers 1 --max-async-tasks 100`, then one
hint per task pushed to its queue; the clock runs from the push to the moment every task
is `delivered` in PostgreSQL (claim, send and record each). Prints both rates, the ratio,
what the emulator recorded, how many lines the worker logged (at `--log-level`, WARNING by
default), and `uptime`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from redis.asyncio import Redis

from bench.delivery_common import (
    REDIS_URL,
    TOKEN,
    count_status,
    drop_queue_keys,
    emulator,
    fresh_database,
    herald_env,
    insert_tasks,
    uptime,
    wait_workers,
    worker,
)
from herald.emulator.remote import RemoteEmulator
from herald.queue import RedisQueue

CONCURRENCY = 100


async def raw_aiogram(base_url: str, n: int) -> float:
    bot = Bot(
        TOKEN,
        session=AiohttpSession(api=TelegramAPIServer.from_base(base_url), limit=CONCURRENCY),
    )

    async def sender(k: int) -> None:
        for i in range(k, n, CONCURRENCY):
            await bot.send_message(1 + i % 1000, f"Your order {i} has shipped")

    try:
        await bot.send_message(1, "warm-up")
        started = time.perf_counter()
        await asyncio.gather(*(sender(k) for k in range(CONCURRENCY)))
        return n / (time.perf_counter() - started)
    finally:
        await bot.session.close()


async def herald_run(
    database_url: str, base_url: str, n: int, log: Path, log_level: str = "WARNING"
) -> float:
    queue = f"herald:bench:{secrets.token_hex(4)}"
    env = herald_env(
        database_url,
        queue,
        base_url,
        log_level=log_level,
        rate_global_per_second=0,
        rate_chat_per_second=0,
        rate_group_per_minute=0,
    )
    ids = await insert_tasks(database_url, n, chats=1000)
    redis = Redis.from_url(REDIS_URL)
    try:
        with worker(env, log):
            await wait_workers(redis, queue, 1)
            task_queue = RedisQueue(redis, queue)
            started = time.perf_counter()
            for i in range(0, n, 1000):
                await task_queue.push([(task_id, None) for task_id in ids[i : i + 1000]])
            while await count_status(database_url, "delivered") < n:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - started
        return n / elapsed
    finally:
        await drop_queue_keys(redis, queue)
        await redis.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--raw", type=int, default=5_000)
    parser.add_argument("--log-level", default="WARNING", help="the worker's HERALD_LOG_LEVEL")
    args = parser.parse_args()
    async with fresh_database() as database_url:
        with emulator(limits=False) as base_url:
            raw_before = await raw_aiogram(base_url, args.raw)
            print(f"raw aiogram (before): {raw_before:,.0f} messages/s")
            async with RemoteEmulator(base_url) as remote:
                await remote.reset()
            with tempfile.TemporaryDirectory() as tmp:
                log = Path(tmp) / "w.log"
                rate = await herald_run(database_url, base_url, args.tasks, log, args.log_level)
                lines = len(log.read_bytes().splitlines())
            async with RemoteEmulator(base_url) as remote:
                recorded = (await remote.stats())["messages"]
                await remote.reset()
            print(f"herald, 1 worker process: {rate:,.0f} tasks/s end to end ({args.tasks} tasks)")
            print(f"emulator recorded {recorded} messages for {args.tasks} tasks")
            print(f"worker log at {args.log_level}: {lines} lines")
            raw_after = await raw_aiogram(base_url, args.raw)
            print(f"raw aiogram (after): {raw_after:,.0f} messages/s")
            raw = (raw_before + raw_after) / 2
            print(f"ratio herald / raw aiogram: {rate / raw:.2f}")
    print(uptime())


if __name__ == "__main__":
    asyncio.run(main())
