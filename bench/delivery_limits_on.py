"""Deliveries per second with Telegram's limits on, work posted through the API, against
the same build with limits off and raw aiogram to the same server in the same run.

    .venv/bin/python bench/delivery_limits_on.py [--tasks 5000] [--chats 5000]
        [--workers 1] [--global-rate 1000000] [--chat-rate 1] [--modes on,off]
        [--log-level INFO] [--raw 5000] [--emulator-global N] [--max-async-tasks 100]
        [--preload]

For each mode (`on`: `HERALD_RATE_GLOBAL_PER_SECOND=--global-rate`,
`HERALD_RATE_CHAT_PER_SECOND=--chat-rate`, 20/min per group; `off`: all three 0), on a
fresh database and queue: `herald worker --workers N` at `--log-level` (INFO, the
default level, unless told) is started, then `herald api` takes `--tasks` tasks over
`--chats` chats through `POST /api/tasks/batch` (1,000 a request, each pushing its
hints) as fast as it answers (with `--preload`, all of them before the worker starts,
the issue's "preloaded through the API"; without it, intake and delivery share the
machine). The rate is the tasks over the time from the first message
the emulator received to the last `delivered` recorded in PostgreSQL (the API is not
the bottleneck: it takes tens of thousands of tasks a second in batches). Beside it: the
429 answers, the CPU of the worker processes, of this database's PostgreSQL backends, of
Redis (shared with other users of the machine) and of the emulator, per delivery, and the
load average.

The emulator answers at once, without limits, unless `--emulator-global N` turns its
Telegram limits on (1/s per chat, 20/min per group, N/s in total; then raw aiogram is
skipped, it knows no limits). Raw aiogram: one process, 100 concurrent `send_message`
calls, before and after Herald.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from bench.delivery_common import (
    REDIS_URL,
    CpuMeter,
    drop_queue_keys,
    fresh_database,
    herald_env,
    loadavg,
    post_batches,
    postgres_backends,
    redis_pid,
    wait_workers,
)
from bench.delivery_throughput import raw_aiogram
from herald.api.auth import mint_token
from herald.config import Settings
from herald.db.pool import asyncpg_dsn
from herald.emulator.remote import RemoteEmulator
from tests.support.processes import emulator_process, start_api, start_worker


async def _delivered(database_url: str, n: int, within: float = 600) -> float:
    """Once all n tasks are delivered: the time of the last record (epoch seconds)."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        deadline = time.monotonic() + within
        while await conn.fetchval("SELECT count(*) FROM tasks WHERE status = 'delivered'") < n:
            if time.monotonic() > deadline:
                raise SystemExit("not all tasks were delivered in time")
            await asyncio.sleep(0.05)
        return float(await conn.fetchval("SELECT extract(epoch FROM max(updated_at)) FROM tasks"))
    finally:
        await conn.close()


async def run_mode(
    mode: str, args: argparse.Namespace, base_url: str, emulator_pid: int, tmp: Path
) -> dict[str, Any]:
    queue = f"herald:bench:{secrets.token_hex(4)}"
    rates = (
        {
            "rate_global_per_second": args.global_rate,
            "rate_chat_per_second": args.chat_rate,
            "rate_group_per_minute": 20,
        }
        if mode == "on"
        else {"rate_global_per_second": 0, "rate_chat_per_second": 0, "rate_group_per_minute": 0}
    )
    redis = Redis.from_url(REDIS_URL)
    try:
        async with fresh_database() as database_url:
            env = herald_env(database_url, queue, base_url, log_level=args.log_level, **rates)
            settings = Settings(_env_file=None, jwt_secret=env["HERALD_JWT_SECRET"])
            token = mint_token(settings, "bench", ["tasks:write"])
            api, api_url = start_api(env, tmp, name=f"api-{mode}")
            items = [
                {
                    "idempotency_key": f"k{i}",
                    "chat_id": 1 + i % args.chats,
                    "text": f"Your order {i} has shipped",
                }
                for i in range(args.tasks)
            ]
            if args.preload:
                await post_batches(api_url, token, items)
            proc = start_worker(
                env,
                tmp,
                "--max-async-tasks",
                str(args.max_async_tasks),
                processes=args.workers,
                name=f"worker-{mode}",
            )
            try:
                await wait_workers(redis, queue, args.workers)

                async def worker_pids() -> list[int]:
                    return proc.pids()

                async def pg_pids() -> list[int]:
                    return await postgres_backends(database_url)

                async def redis_pids() -> list[int]:
                    return [await redis_pid(redis)]

                async def emulator_pids() -> list[int]:
                    return [emulator_pid]

                meter = CpuMeter(
                    worker=worker_pids,
                    postgres=pg_pids,
                    redis=redis_pids,
                    emulator=emulator_pids,
                )
                await meter.start()
                load_start = loadavg()
                if not args.preload:
                    await post_batches(api_url, token, items)
                last = await _delivered(database_url, args.tasks)
                await meter.stop()
                load_end = loadavg()
            finally:
                proc.stop(timeout=30)
                api.stop(timeout=10)
            log_lines = len(proc.log_path.read_bytes().splitlines())
        async with RemoteEmulator(base_url) as remote:
            messages = await remote.messages()
            received = await remote.received()
            await remote.reset()
        first = min(m["time"] for m in messages)
        seconds = last - first
        return {
            "mode": mode,
            "rate": args.tasks / seconds,
            "seconds": seconds,
            "messages": len(messages),
            "429": sum(1 for r in received if r.get("status") == 429),
            "cpu": meter.line(args.tasks, seconds),
            "worker_us": meter.spent["worker"] / args.tasks * 1e6,
            "load": f"{load_start} -> {load_end}",
            "log_lines": log_lines,
        }
    finally:
        await drop_queue_keys(redis, queue)
        await redis.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--chats", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--global-rate", type=float, default=1_000_000)
    parser.add_argument("--chat-rate", type=float, default=1)
    parser.add_argument("--modes", default="on,off")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--raw", type=int, default=5000)
    parser.add_argument("--emulator-global", type=float, default=0)
    parser.add_argument("--max-async-tasks", type=int, default=100)
    parser.add_argument(
        "--preload",
        action="store_true",
        help="post every task before the worker starts (the rate is then the workers' alone)",
    )
    args = parser.parse_args()
    limits = (
        ["--global-per-second", str(args.emulator_global)]
        if args.emulator_global
        else ["--no-limits"]
    )
    raw = args.raw if not args.emulator_global else 0
    with (
        tempfile.TemporaryDirectory() as tmp,
        emulator_process(Path(tmp), "--keep", "500000", *limits) as (emu, base_url),
    ):
        raws: list[float] = []
        if raw:
            raws.append(await raw_aiogram(base_url, raw))
            print(f"raw aiogram (before): {raws[-1]:,.0f} messages/s  [load {loadavg()}]")
            async with RemoteEmulator(base_url) as remote:
                await remote.reset()
        results = []
        for mode in args.modes.split(","):
            r = await run_mode(mode, args, base_url, emu.pid, Path(tmp))
            results.append(r)
            print(
                f"limits {mode}, {args.workers} worker process(es), {args.log_level}:"
                f" {r['rate']:,.0f} deliveries/s ({args.tasks} tasks over {args.chats} chats"
                f" in {r['seconds']:.2f} s), {r['messages']} messages, {r['429']} answered 429,"
                f" {r['log_lines']} log lines  [load {r['load']}]"
            )
            print(f"  {r['cpu']}")
        if raw:
            raws.append(await raw_aiogram(base_url, raw))
            print(f"raw aiogram (after): {raws[-1]:,.0f} messages/s  [load {loadavg()}]")
            mean = sum(raws) / len(raws)
            for r in results:
                print(f"limits {r['mode']} / raw aiogram: {r['rate'] / mean:.2f}")
        by_mode = {r["mode"]: r for r in results}
        if {"on", "off"} <= by_mode.keys():
            on, off = by_mode["on"], by_mode["off"]
            print(f"limits on / limits off: {on['rate'] / off['rate']:.2f}")
            print(
                f"worker CPU per delivery: on {on['worker_us']:,.0f} us,"
                f" off {off['worker_us']:,.0f} us"
            )


if __name__ == "__main__":
    asyncio.run(main())
