"""From POST to delivered at a steady 100 tasks/s, limits off or on: p50 and p99.

    .venv/bin/python bench/post_to_delivered.py [--rate 100] [--seconds 20]
        [--limits GLOBAL_PER_SECOND]

Runs `herald api` (one process), `herald worker --workers 1` and the emulator (limits
off; Herald's limits off too, unless `--limits N`: Herald's rate limits on, N/s in
total, 1/s per chat, 20/min per group; the tasks go to 500 chats). An open-loop client
posts one task every 1/rate s, each with its own Idempotency-Key, and notes when it
started the request; 3 s of the same load before it warm the processes up and are not
counted. Latencies per task, from that moment: to the start of its claim's transaction
(the queue and the worker's pick-up), to the message's arrival in the emulator (what a
recipient sees), and to `delivered` recorded in PostgreSQL. Prints p50, p90, p99 and max
of each, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis

from bench.delivery_common import (
    REDIS_URL,
    drop_queue_keys,
    emulator,
    fresh_database,
    herald_env,
    loadavg,
    wait_workers,
    worker,
)
from herald.api.auth import mint_token
from herald.config import Settings
from herald.db.pool import asyncpg_dsn
from herald.emulator.remote import RemoteEmulator
from tests.support.processes import start_api


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return (
        f"p50 {at(0.50):.1f} ms, p90 {at(0.90):.1f} ms, p99 {at(0.99):.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms (n={len(ordered)})"
    )


ANSWERED: dict[str, float] = {}


async def _wait_healthy(client: aiohttp.ClientSession) -> None:
    for _ in range(1200):
        try:
            async with client.get("/health") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("herald api did not start")


async def _load(
    client: aiohttp.ClientSession, token: str, rate: float, n: int, prefix: str = "lat"
) -> dict[str, float]:
    """Open loop: one POST every 1/rate s whatever the answers; when each one started."""
    started: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {token}"}

    async def post(i: int) -> None:
        key = f"{prefix}-{i}"
        started[key] = time.time()
        body = {"chat_id": 1 + i % 500, "text": key}
        async with client.post(
            "/api/tasks", json=body, headers={**headers, "Idempotency-Key": key}
        ) as r:
            r.raise_for_status()
        ANSWERED[key] = time.time() - started[key]

    t0 = time.perf_counter()
    posts = []
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        posts.append(asyncio.create_task(post(i)))
    await asyncio.gather(*posts)
    return started


async def _claimed_at(database_url: str) -> dict[str, float]:
    """When each task's (first) claim began, by idempotency key: the transaction time."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT t.idempotency_key, extract(epoch FROM min(e.at)) AS at"
            " FROM task_events e JOIN tasks t ON t.id = e.task_id"
            " WHERE e.to_status = 'sending' GROUP BY t.idempotency_key"
        )
    finally:
        await conn.close()
    return {r["idempotency_key"]: float(r["at"]) for r in rows}


async def _delivered(database_url: str, n: int) -> list[Any]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for _ in range(600):
            rows: list[Any] = await conn.fetch(
                "SELECT idempotency_key, extract(epoch FROM updated_at) AS at,"
                " extract(epoch FROM created_at) AS created"
                " FROM tasks WHERE status = 'delivered'"
            )
            if len(rows) == n:
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--limits", type=float, default=0, help="Herald's global rate")
    args = parser.parse_args()
    rates = {
        "rate_global_per_second": args.limits,
        "rate_chat_per_second": 1 if args.limits else 0,
        "rate_group_per_minute": 20 if args.limits else 0,
    }
    n = int(args.rate * args.seconds)
    queue = f"herald:bench:{secrets.token_hex(4)}"
    redis = Redis.from_url(REDIS_URL)
    async with fresh_database() as database_url:
        with emulator(limits=False) as base_url, tempfile.TemporaryDirectory() as tmp:
            env = herald_env(database_url, queue, base_url, **rates)
            settings = Settings(_env_file=None, jwt_secret=env["HERALD_JWT_SECRET"])
            token = mint_token(settings, "bench", ["tasks:write"])
            api, api_url = start_api(env, Path(tmp))
            try:
                with worker(env, Path(tmp) / "w.log"):
                    await wait_workers(redis, queue, 1)
                    # aiohttp, not httpx: at 100 requests/s httpx alone took most of a core
                    # here and its queueing, not Herald, made the latency.
                    async with aiohttp.ClientSession(
                        base_url=api_url,
                        timeout=aiohttp.ClientTimeout(total=30),
                    ) as client:
                        await _wait_healthy(client)
                        # Warm-up, not measured: connections, first requests, first sends.
                        await _load(client, token, args.rate, int(args.rate * 3), "warm")
                        async with RemoteEmulator(base_url) as remote:
                            await remote.wait_messages(int(args.rate * 3), timeout=60)
                            await remote.reset()
                        await _delivered(database_url, int(args.rate * 3))
                        started = await _load(client, token, args.rate, n)
                    async with RemoteEmulator(base_url) as remote:
                        messages = await remote.wait_messages(n, timeout=60)
                    rows = [
                        r
                        for r in await _delivered(database_url, n + int(args.rate * 3))
                        if r["idempotency_key"] in started
                    ]
                    claimed = await _claimed_at(database_url)
            finally:
                api.stop(timeout=10)
            await drop_queue_keys(redis, queue)
    await redis.aclose()
    print(
        f"{n} tasks at {args.rate:g}/s, Herald's limits "
        + (f"on ({args.limits:g}/s)" if args.limits else "off")
    )
    print(f"POST answered:                    {_percentiles([ANSWERED[k] for k in started])}")
    created = [float(r["at"]) - float(r["created"]) for r in rows]
    print(f"created -> delivered (database):  {_percentiles(created)}")
    print(
        "POST -> claim began:              "
        + _percentiles([claimed[k] - started[k] for k in started if k in claimed])
    )
    to_telegram = [m["time"] - started[m["text"]] for m in messages if m["text"] in started]
    print(f"POST -> in the emulator:          {_percentiles(to_telegram)}")
    recorded = [float(r["at"]) - started[r["idempotency_key"]] for r in rows]
    print(f"POST -> delivered in PostgreSQL:  {_percentiles(recorded)}")
    print(f"load average: {loadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
