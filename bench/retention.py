"""Retention's purge over a table of a million old tasks, and intake and delivery beside it.

    .venv/bin/python bench/retention.py [--rows 1000000] [--rate 300] [--seconds 20]

A fresh database gets `--rows` delivered tasks last changed 40 days ago, one audit event
each (what a month of traffic leaves), then `VACUUM ANALYZE`. `herald api` and one
`herald worker` run against the emulator with Telegram's limits on at the paid-broadcast
setting (1,000/s in total, 1/s per chat; Herald the same), default log level. An
open-loop client posts `--rate` tasks/s over 10,000 chats through the API for `--seconds`,
twice with the same load:

1. `HERALD_RETENTION_DAYS=0`: nothing is purged (the baseline);
2. `HERALD_RETENTION_DAYS=30`: the worker purges the million while the load runs.

For each: POST latency (p50, p99), deliveries/s and created -> delivered (p50, p99) of
the tasks posted in the window, and in (2) the tasks purged per second in it. Then the
purge runs on alone to the end; the total is timed from the worker's spawn. Prints
`uptime` before and after.
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
    fresh_database,
    herald_env,
    post_open_loop,
    uptime,
    wait_workers,
    worker,
)
from herald.api.auth import mint_token
from herald.config import Settings
from herald.db.pool import asyncpg_dsn
from tests.support.processes import start_api, start_emulator

CHATS = 10_000
LIMITS = {"rate_global_per_second": 1000, "rate_chat_per_second": 1, "log_level": "INFO"}


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0


async def load_old_tasks(conn: Any, rows: int) -> None:
    await conn.execute(
        """
        INSERT INTO tasks (client, idempotency_key, request_hash, chat_id, content,
                           status, attempt, max_attempts, telegram_message_id,
                           created_at, updated_at)
        SELECT 'old', 'old-' || i, '\\x00', (1 + i % 10000)::text,
               jsonb_build_object('text', 'Your order ' || i || ' has shipped'),
               'delivered', 1, 5, i, now() - interval '40 days', now() - interval '40 days'
        FROM generate_series(1, $1) AS i
        """,
        rows,
    )
    await conn.execute(
        """
        INSERT INTO task_events (task_id, at, actor, from_status, to_status, attempt)
        SELECT id, updated_at, 'worker:old', 'sending', 'delivered', 1 FROM tasks
        """
    )
    await conn.execute("VACUUM ANALYZE tasks, task_events")


async def delivered_lags(conn: Any, tag: str, n: int, within: float = 120) -> list[float]:
    deadline = time.monotonic() + within
    while True:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM updated_at - created_at) AS lag FROM tasks"
            " WHERE client = 'bench' AND idempotency_key LIKE $1 AND status = 'delivered'",
            f"{tag}-%",
        )
        if len(rows) >= n or time.monotonic() > deadline:
            return [float(r["lag"]) for r in rows]
        await asyncio.sleep(0.5)


async def old_left(conn: Any) -> int:
    n: int = await conn.fetchval("SELECT count(*) FROM tasks WHERE client = 'old'")
    return n


async def phase(
    conn: Any, env: dict[str, str], api_url: str, token: str, args: Any, tag: str, log: Path
) -> None:
    redis = Redis.from_url(REDIS_URL)
    # Counted before the worker starts: its first purge run begins with its start-up.
    before, spawned = await old_left(conn), time.perf_counter()
    with worker(env, log):
        await wait_workers(redis, env["HERALD_QUEUE_NAME"], 1)
        left, started = await old_left(conn), time.perf_counter()
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(args.seconds, stop.set)
        latencies, _ = await post_open_loop(api_url, token, args.rate, stop, tag, CHATS)
        elapsed = time.perf_counter() - started
        purged = left - await old_left(conn)
        lags = await delivered_lags(conn, tag, len(latencies))
        print(
            f"{tag}: POST p50 {_pct(latencies, 0.5):.1f} ms p99 {_pct(latencies, 0.99):.1f} ms;"
            f" {len(lags) / elapsed:,.0f} delivered/s of {args.rate:g} posted/s;"
            f" created -> delivered p50 {_pct(lags, 0.5):.0f} ms p99 {_pct(lags, 0.99):.0f} ms;"
            f" purged {purged:,} ({purged / elapsed:,.0f}/s)"
        )
        if env.get("HERALD_RETENTION_DAYS") != "0":
            while await old_left(conn) > 0:  # noqa: ASYNC110
                await asyncio.sleep(1)
            total = time.perf_counter() - spawned
            print(
                f"{tag}: all {before:,} purged {total:.0f} s after the worker's spawn"
                f" ({before / total:,.0f}/s)"
            )
    await redis.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    print(uptime())
    async with fresh_database() as database_url:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        loading = time.perf_counter()
        await load_old_tasks(conn, args.rows)
        print(f"loaded {args.rows:,} old tasks in {time.perf_counter() - loading:.0f} s")
        with tempfile.TemporaryDirectory() as tmp:
            emulator, emulator_url = start_emulator(Path(tmp), "--global-per-second", "1000")
            base = herald_env(
                database_url, f"herald:bench:{secrets.token_hex(4)}", emulator_url, **LIMITS
            )
            token = mint_token(
                Settings(_env_file=None, jwt_secret=base["HERALD_JWT_SECRET"]),
                "bench",
                ["tasks:write"],
            )
            try:
                api, api_url = start_api(base, Path(tmp))
                try:
                    for days, tag in ((0, "off"), (30, "purging")):
                        env = {**base, "HERALD_RETENTION_DAYS": str(days)}
                        log = Path(tmp) / f"{tag}.log"
                        await phase(conn, env, api_url, token, args, tag, log)
                finally:
                    api.stop(timeout=10)
            finally:
                emulator.stop(timeout=10)
        await conn.close()
    print(uptime())


if __name__ == "__main__":
    asyncio.run(main())
