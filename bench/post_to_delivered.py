"""From POST to delivered at a steady 100 tasks/s, unthrottled: p50 and p99.

    .venv/bin/python bench/post_to_delivered.py [--rate 100] [--seconds 20]

Runs `herald api` (one process), `herald worker --workers 1` and the emulator (limits
off; Herald's limits off too). An open-loop client posts one task every 1/rate s, each
with its own Idempotency-Key, and notes when it started the request. Two latencies per
task, from that moment: to the message's arrival in the emulator (what a recipient sees),
and to `delivered` recorded in PostgreSQL. Prints p50, p90, p99 and max of both, and
`uptime`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from redis.asyncio import Redis

from bench.delivery_common import (
    HERALD,
    REDIS_URL,
    emulator,
    fresh_database,
    herald_env,
    uptime,
    wait_workers,
    worker,
)
from herald.api.auth import mint_token
from herald.config import Settings
from herald.db.pool import asyncpg_dsn
from herald.emulator.remote import RemoteEmulator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return (
        f"p50 {at(0.50):.1f} ms, p90 {at(0.90):.1f} ms, p99 {at(0.99):.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms (n={len(ordered)})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    queue = f"herald:bench:{secrets.token_hex(4)}"
    port = _free_port()
    redis = Redis.from_url(REDIS_URL)
    async with fresh_database() as database_url:
        with (
            emulator(limits=False) as base_url,
            tempfile.TemporaryDirectory() as tmp,
        ):
            env = herald_env(
                database_url,
                queue,
                base_url,
                rate_global_per_second=0,
                rate_chat_per_second=0,
                rate_group_per_minute=0,
            )
            settings = Settings(_env_file=None, jwt_secret=env["HERALD_JWT_SECRET"])
            token = mint_token(settings, "bench", ["tasks:write"])
            api_log = (Path(tmp) / "api.log").open("wb")
            api = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [*HERALD, "api", "--port", str(port)], env=env, stdout=api_log, stderr=api_log
            )
            started: dict[str, float] = {}
            try:
                with worker(env, Path(tmp) / "w.log"):
                    await wait_workers(redis, queue, 1)
                    url = f"http://127.0.0.1:{port}"
                    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                        for _ in range(600):
                            try:
                                if (await client.get("/health")).status_code == 200:
                                    break
                            except httpx.TransportError:
                                pass
                            await asyncio.sleep(0.1)
                        headers = {"Authorization": f"Bearer {token}"}

                        async def post(i: int) -> None:
                            key = f"lat-{i}"
                            started[key] = time.time()
                            body = {"chat_id": 1 + i % 500, "text": key}
                            r = await client.post(
                                "/api/tasks", json=body, headers={**headers, "Idempotency-Key": key}
                            )
                            r.raise_for_status()

                        n = int(args.rate * args.seconds)
                        t0 = time.perf_counter()
                        posts = []
                        for i in range(n):
                            delay = t0 + i / args.rate - time.perf_counter()
                            if delay > 0:
                                await asyncio.sleep(delay)
                            posts.append(asyncio.create_task(post(i)))
                        await asyncio.gather(*posts)
                    async with RemoteEmulator(base_url) as remote:
                        messages = await remote.wait_messages(n, timeout=60)
                    conn = await asyncpg.connect(asyncpg_dsn(database_url))
                    for _ in range(100):
                        rows = await conn.fetch(
                            "SELECT idempotency_key, extract(epoch FROM updated_at) AS at"
                            " FROM tasks WHERE status = 'delivered'"
                        )
                        if len(rows) == n:
                            break
                        await asyncio.sleep(0.1)
                    await conn.close()
            finally:
                api.terminate()
                api.wait(10)
                api_log.close()
            keys = [k async for k in redis.scan_iter(match=f"{queue}*")]
            if keys:
                await redis.delete(*keys)
    await redis.aclose()
    to_telegram = [m["time"] - started[m["text"]] for m in messages]
    recorded = [float(r["at"]) - started[r["idempotency_key"]] for r in rows]
    print(f"{n} tasks at {args.rate:g}/s")
    print(f"POST -> in the emulator:        {_percentiles(to_telegram)}")
    print(f"POST -> delivered in PostgreSQL: {_percentiles(recorded)}")
    print(uptime())


if __name__ == "__main__":
    asyncio.run(main())
