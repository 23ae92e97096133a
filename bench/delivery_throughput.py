"""Deliveries per second of one worker process, against raw aiogram in the same run.

    .venv/bin/python bench/delivery_throughput.py [--tasks 10000] [--raw 5000] [--log-level INFO]
    .venv/bin/python bench/delivery_throughput.py --callbacks 3 [--tasks 10000]

The emulator runs with limits off (`herald emulator --no-limits`), as does Herald
(`HERALD_RATE_*=0`). Raw aiogram: one process, 100 concurrent `bot.send_message` calls
through the emulator, measured before and after Herald. Herald: `--tasks` pending tasks
over 1,000 chats, then one `herald worker --workers 1 --max-async-tasks 100`, then one
hint per task pushed to its queue; the clock runs from the push to the moment every task
is `delivered` in PostgreSQL (claim, send and record each). Prints both rates, the ratio,
what the emulator recorded, how many lines the worker logged (at `--log-level`, WARNING by
default), and `uptime`.

`--callbacks ROUNDS` measures status callbacks' cost instead: ROUNDS rounds of three runs
of one worker process each (`CALLBACK_MODES`: the outbox trigger disabled, as before
callbacks; the trigger with no endpoint; an endpoint for the tasks' client), alternating
so that the shared machine's load falls on each alike; the rate is to the last task
`delivered`, and for `on` the time until every callback event was delivered is printed
too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import asyncpg
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from redis.asyncio import Redis

from bench.delivery_common import (
    REDIS_URL,
    TOKEN,
    callback_receiver,
    count_status,
    drop_queue_keys,
    emulator,
    fresh_database,
    herald_env,
    insert_tasks,
    new_webhook_secret,
    postgres_backends,
    uptime,
    wait_workers,
    worker,
)
from herald.db.pool import asyncpg_dsn
from herald.emulator.remote import RemoteEmulator
from herald.fleet import pid_of
from herald.keys import workers_pattern
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


class Run(NamedTuple):
    rate: float  # tasks/s, from the push to the last `delivered`
    # CPU per task (user + system) of the worker process and of the PostgreSQL backends
    # serving this run's database: what the machine's other load does not change much.
    worker_ms: float
    postgres_ms: float


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone: a backend that closed
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


async def measured_pids(database_url: str, redis: Redis, queue: str) -> tuple[list[int], list[int]]:
    """The worker processes (by their presence keys) and the backends of the database."""
    keys = [k async for k in redis.scan_iter(match=workers_pattern(queue))]
    workers = [pid_of(v) for v in await redis.mget(keys) if v is not None]
    return workers, await postgres_backends(database_url)


async def herald_run(
    database_url: str,
    base_url: str,
    n: int,
    log: Path,
    log_level: str = "WARNING",
    **extra: str,
) -> Run:
    queue = f"herald:bench:{secrets.token_hex(4)}"
    env = herald_env(
        database_url,
        queue,
        base_url,
        log_level=log_level,
        rate_global_per_second=0,
        rate_chat_per_second=0,
        rate_group_per_minute=0,
        **extra,
    )
    ids = await insert_tasks(database_url, n, chats=1000)
    redis = Redis.from_url(REDIS_URL)
    try:
        with worker(env, log):
            await wait_workers(redis, queue, 1)
            await asyncio.sleep(1)  # the pools' connections open
            workers, backends = await measured_pids(database_url, redis, queue)
            cpu_before = cpu_seconds(workers), cpu_seconds(backends)
            task_queue = RedisQueue(redis, queue)
            started = time.perf_counter()
            for i in range(0, n, 1000):
                await task_queue.push([(task_id, None) for task_id in ids[i : i + 1000]])
            while await count_status(database_url, "delivered") < n:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - started
            if "callbacks" in extra:
                while await count_callbacks(database_url, "delivered") < n:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                with_events = time.perf_counter() - started
                print(f"    every callback event delivered after {with_events:.2f} s")
            worker_cpu = cpu_seconds(workers) - cpu_before[0]
            postgres_cpu = cpu_seconds(backends) - cpu_before[1]
        return Run(n / elapsed, 1000 * worker_cpu / n, 1000 * postgres_cpu / n)
    finally:
        await drop_queue_keys(redis, queue)
        await redis.aclose()


async def count_callbacks(database_url: str, status: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM callback_events WHERE status = $1", status
        )
    finally:
        await conn.close()
    return n


# The three ways a deployment runs since status callbacks: `off` is the schema before
# them (the outbox trigger disabled), `idle` has the trigger but no endpoint (every
# deployment that does not use callbacks), `on` has an endpoint for the tasks' client,
# answered at once by bench/callback_receiver.py (its own process).
CALLBACK_MODES = ("off", "idle", "on")


async def callbacks_comparison(
    database_url: str, base_url: str, n: int, rounds: int, log_level: str
) -> None:
    secret = new_webhook_secret()
    runs: dict[str, list[Run]] = {mode: [] for mode in CALLBACK_MODES}
    with (
        tempfile.TemporaryDirectory() as tmp,
        callback_receiver(secret, Path(tmp) / "received.jsonl") as url,
    ):
        endpoint = json.dumps({"bench": {"url": url, "secret": secret}})
        for r in range(rounds):
            for mode in CALLBACK_MODES:
                await reset(database_url, trigger=mode != "off")
                async with RemoteEmulator(base_url) as remote:
                    await remote.reset()
                extra = {"callbacks": endpoint} if mode == "on" else {}
                log = Path(tmp) / f"w-{r}-{mode}.log"
                run = await herald_run(database_url, base_url, n, log, log_level, **extra)
                runs[mode].append(run)
                print(
                    f"round {r + 1} {mode:>4}: {run.rate:,.0f} tasks/s, CPU per task:"
                    f" worker {run.worker_ms:.3f} ms, PostgreSQL {run.postgres_ms:.3f} ms"
                    f"   {uptime()}"
                )
    median = {
        mode: Run(*(statistics.median(getattr(r, f) for r in rs) for f in Run._fields))
        for mode, rs in runs.items()
    }
    for mode, m in median.items():
        print(
            f"{mode:>4} (medians): {m.rate:,.0f} tasks/s, worker {m.worker_ms:.3f} ms/task,"
            f" PostgreSQL {m.postgres_ms:.3f} ms/task"
        )
    off = median["off"]
    for mode in ("idle", "on"):
        m = median[mode]
        print(
            f"{mode} against off: worker CPU {m.worker_ms / off.worker_ms - 1:+.1%},"
            f" PostgreSQL CPU {m.postgres_ms / off.postgres_ms - 1:+.1%},"
            f" rate {m.rate / off.rate - 1:+.1%}"
        )


async def reset(database_url: str, *, trigger: bool) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "TRUNCATE tasks, task_events, callback_events, callback_attempts RESTART IDENTITY"
        )
        state = "ENABLE" if trigger else "DISABLE"
        await conn.execute(f"ALTER TABLE task_events {state} TRIGGER task_events_callback")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--raw", type=int, default=5_000)
    parser.add_argument("--log-level", default="WARNING", help="the worker's HERALD_LOG_LEVEL")
    parser.add_argument(
        "--callbacks",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="instead: ROUNDS alternating runs without callbacks (trigger off), with the"
        " trigger and no endpoint, and with an endpoint",
    )
    args = parser.parse_args()
    if args.callbacks:
        async with fresh_database() as database_url:
            with emulator(limits=False) as base_url:
                await callbacks_comparison(
                    database_url, base_url, args.tasks, args.callbacks, args.log_level
                )
        return
    async with fresh_database() as database_url:
        with emulator(limits=False) as base_url:
            raw_before = await raw_aiogram(base_url, args.raw)
            print(f"raw aiogram (before): {raw_before:,.0f} messages/s")
            async with RemoteEmulator(base_url) as remote:
                await remote.reset()
            with tempfile.TemporaryDirectory() as tmp:
                log = Path(tmp) / "w.log"
                run = await herald_run(database_url, base_url, args.tasks, log, args.log_level)
                rate = run.rate
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
