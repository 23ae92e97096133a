"""The operator console over a million tasks: page latency, and a bulk action under load.

    .venv/bin/python bench/console.py [--rows 1000000] [--requests 200] [--rate 200]

A fresh database gets `--rows` tasks made over the last 24 hours by eight clients in one
`INSERT ... SELECT generate_series` (exactly a tenth failed, 13,500 pending scheduled
for tomorrow, about 0.2 % uncertain and 1 % cancelled, the rest delivered), each with its
`created` event and, when it was sent, its final one; then `VACUUM ANALYZE`.

1. Latency. `herald api` runs over it; the benchmark signs in to the console as an
   operator would (the sign-in form) and requests, one after another, `--requests` times
   each: the overview, its live part, and the first page of the task list under each
   filter. Prints p50, p95 and p99 of the whole request as the client sees it.
2. Bulk under load. `herald worker` and the emulator join (Telegram's limits at the paid
   broadcast setting: 1,000/s, 1/s per chat). An open-loop client posts `--rate` tasks/s
   for a baseline window, then the console starts "resend all failed tasks" (100,000 at
   the default size) while the same load goes on. For both windows: POST latency (p50,
   p99), tasks accepted per second, deliveries per second (the audit trail's `delivered`
   events in the window); and the bulk action's duration and rate.

Prints `uptime` before and after: on a shared machine, numbers from a load above 1.5
must be measured again on a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis

from bench.delivery_common import (
    HERALD,
    REDIS_URL,
    fresh_database,
    herald_env,
    post_open_loop,
    uptime,
    worker,
)
from bench.delivery_common import wait_workers as wait_for_workers
from bench.stack import free_port, wait_port
from herald.api.auth import mint_token
from herald.config import Settings
from herald.db.pool import asyncpg_dsn

CLIENTS = ["billing", "shop", "auth", "alerts", "reports", "chat", "crm", "ops"]
# As users run it: Telegram's limits on (the paid-broadcast setting), default log level.
LIMITS = {"rate_global_per_second": 1000, "rate_chat_per_second": 1, "log_level": "INFO"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')

LOAD_TASKS = """
INSERT INTO tasks (client, idempotency_key, request_hash, chat_id, content, status, attempt,
                   failures, max_attempts, send_at, next_attempt_at, enqueued_at,
                   telegram_message_id, last_error_code, last_error, created_at, updated_at)
SELECT c.client, 'order-' || i, '\\x00', (1000 + (i * 7) % 50000)::text,
       jsonb_build_object('text', 'Order <b>' || i || '</b> has shipped', 'parse_mode', 'HTML'),
       s.status, CASE WHEN s.status = 'pending' THEN 0 ELSE 1 END,
       CASE WHEN s.status = 'failed' THEN 1 ELSE 0 END, 5,
       CASE WHEN s.status = 'pending' THEN now() + interval '1 day' END,
       CASE WHEN s.status = 'pending' THEN now() + interval '1 day' ELSE t.created END,
       t.created,
       CASE WHEN s.status = 'delivered' THEN i END,
       CASE WHEN s.status = 'failed' THEN (ARRAY[400, 403, 400, 400])[1 + i % 4] END,
       CASE WHEN s.status = 'failed' THEN (ARRAY[
            'TelegramBadRequest: Bad Request: chat not found',
            'TelegramForbiddenError: Forbidden: bot was blocked by the user',
            'TelegramBadRequest: Bad Request: message is too long',
            'TelegramBadRequest: Bad Request: chat not found'])[1 + i % 4]
            WHEN s.status = 'uncertain' THEN 'ServerDisconnectedError: connection lost' END,
       t.created,
       t.created + CASE WHEN s.status = 'pending' THEN interval '0' ELSE interval '2 s' END
FROM generate_series(1::bigint, $1::bigint) AS i
CROSS JOIN LATERAL (SELECT ($2::text[])[1 + i % 8] AS client) c
CROSS JOIN LATERAL (
    SELECT now() - interval '24 hours' + (i::float8 / $1) * interval '24 hours' AS created) t
CROSS JOIN LATERAL (SELECT CASE
    WHEN i % 10 = 3 THEN 'failed'
    WHEN i > $1 - 15000 THEN 'pending'
    WHEN (i * 7919) % 1000 < 2 THEN 'uncertain'
    WHEN (i * 7919) % 1000 < 12 THEN 'cancelled'
    ELSE 'delivered' END AS status) s
"""
LOAD_EVENTS = [
    """INSERT INTO task_events (task_id, at, actor, to_status, reason)
       SELECT id, created_at, 'client:' || client, 'pending', 'created' FROM tasks""",
    """INSERT INTO task_events (task_id, at, actor, from_status, to_status, attempt, reason,
                                error_code)
       SELECT id, updated_at, 'worker:bench', 'sending', status, 1, 'recorded', last_error_code
       FROM tasks WHERE status IN ('delivered', 'failed', 'uncertain')""",
]


def _ms(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0


def _filters(now: datetime) -> dict[str, str]:
    def t(hours: float) -> str:
        return (now - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S")

    return {
        "no filter": "",
        "status=failed": "status=failed",
        "status=uncertain": "status=uncertain",
        "client=billing": "client=billing",
        "chat_id=1007": "chat_id=1007",
        "created since 2 h ago": f"created_after={t(2)}",
        "created before 12 h ago": f"created_before={t(12)}",
        "created 20 h to 19 h ago": f"created_after={t(20)}&created_before={t(19)}",
        "idempotency_key (no client)": "idempotency_key=order-500005",
        "billing + failed + since 3 h": f"client=billing&status=failed&created_after={t(3)}",
        "uncertain + before 12 h": f"status=uncertain&created_before={t(12)}",
    }


async def sign_in(http: aiohttp.ClientSession, token: str) -> str:
    """As a person does: the form (and its CSRF cookie), then the token posted."""
    async with http.get("/console/sign-in") as resp:
        csrf = CSRF.search(await resp.text())
    assert csrf is not None
    async with http.post(
        "/console/sign-in", data={"csrf": csrf.group(1), "token": token, "next": "/console"}
    ) as resp:
        page = await resp.text()
        assert resp.status == 200, resp.status
    session_csrf = CSRF.search(page)
    assert session_csrf is not None
    return session_csrf.group(1)


async def timed(http: aiohttp.ClientSession, path: str, n: int, **headers: str) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        async with http.get(path, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, (path, resp.status)
        latencies.append(time.perf_counter() - started)
    return latencies


async def latency(base: str, token: str, n: int) -> None:
    async with aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        await sign_in(http, token)
        await timed(http, "/console", 5)  # the first requests warm the process up
        rows = [("overview", await timed(http, "/console", n))]
        rows.append(
            ("overview, live part", await timed(http, "/console/overview/live", n, **_fragment()))
        )
        for name, query in _filters(datetime.now(UTC)).items():
            rows.append((f"tasks: {name}", await timed(http, f"/console/tasks?{query}", n)))
    print(f"{'page':<42} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, values in rows:
        print(
            f"{name:<42} {_ms(values, 0.5):>8.1f} {_ms(values, 0.95):>8.1f}"
            f" {_ms(values, 0.99):>8.1f}"
        )


def _fragment() -> dict[str, str]:
    return {"X-Console-Fragment": "1"}


async def delivered_between(conn: Any, start: datetime, end: datetime) -> int:
    n: int = await conn.fetchval(
        "SELECT count(*) FROM task_events WHERE to_status = 'delivered' AND at >= $1 AND at < $2",
        start,
        end,
    )
    return n


def _report(tag: str, latencies: list[float], elapsed: float, delivered: int) -> None:
    print(
        f"{tag}: {len(latencies) / elapsed:,.0f} tasks accepted/s, POST p50"
        f" {_ms(latencies, 0.5):.1f} ms p99 {_ms(latencies, 0.99):.1f} ms;"
        f" {delivered / elapsed:,.0f} deliveries/s"
    )


async def bulk_under_load(
    conn: Any, base: str, port: int, tokens: tuple[str, str], args: Any
) -> None:
    operator_token, producer_token = tokens
    api = f"http://127.0.0.1:{port}"
    # Baseline: the load alone.
    stop = asyncio.Event()
    t0 = datetime.now(UTC)
    load = asyncio.create_task(post_open_loop(api, producer_token, args.rate, stop, "base"))
    await asyncio.sleep(args.baseline)
    stop.set()
    latencies, elapsed = await load
    _report("baseline", latencies, elapsed, await delivered_between(conn, t0, datetime.now(UTC)))

    async with aiohttp.ClientSession(
        base_url=base, headers={"Origin": base}, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        csrf = await sign_in(http, operator_token)
        stop = asyncio.Event()
        t0 = datetime.now(UTC)
        load = asyncio.create_task(post_open_loop(api, producer_token, args.rate, stop, "bulk"))
        started = time.perf_counter()
        form = {"csrf": csrf, "action": "resend", "scope": "filter", "status": "failed"}
        async with http.post("/console/bulk", data=form, allow_redirects=False) as resp:
            assert resp.status == 303, resp.status
            job = resp.headers["Location"]
        while True:
            async with http.get(f"{job}/progress", headers=_fragment()) as resp:
                html = await resp.text()
            if "data-live-final" in html:
                break
            await asyncio.sleep(0.2)
        bulk_seconds = time.perf_counter() - started
        stop.set()
        latencies, elapsed = await load
    moved = re.search(r'id="job-moved">([\d,]+)<', html)
    assert moved is not None
    count = int(moved.group(1).replace(",", ""))
    _report(
        "during the bulk resend",
        latencies,
        elapsed,
        await delivered_between(conn, t0, datetime.now(UTC)),
    )
    print(f"bulk resend: {count:,} tasks in {bulk_seconds:.1f} s ({count / bulk_seconds:,.0f}/s)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--baseline", type=float, default=15)
    args = parser.parse_args()
    print(uptime())
    async with fresh_database() as database_url:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        loading = time.perf_counter()
        await conn.execute(LOAD_TASKS, args.rows, CLIENTS)
        for sql in LOAD_EVENTS:
            await conn.execute(sql)
        await conn.execute("VACUUM ANALYZE tasks, task_events")
        print(f"loaded {args.rows:,} tasks in {time.perf_counter() - loading:.0f} s")
        emulator_port, api_port = free_port(), free_port()
        queue = f"herald:bench:{secrets.token_hex(4)}"
        env = herald_env(database_url, queue, f"http://127.0.0.1:{emulator_port}", **LIMITS)
        settings = Settings(_env_file=None, jwt_secret=env["HERALD_JWT_SECRET"])
        operator = mint_token(settings, "bench-operator", ["tasks:read", "tasks:manage"])
        producer = mint_token(settings, "bench", ["tasks:write"])
        base = f"http://127.0.0.1:{api_port}"
        with tempfile.TemporaryDirectory() as tmp:
            api = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [*HERALD, "api", "--port", str(api_port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            emulator = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [*HERALD, "emulator", "--port", str(emulator_port), "--global-per-second", "1000"],
                stdout=subprocess.DEVNULL,
            )
            try:
                wait_port(api_port)
                wait_port(emulator_port)
                await asyncio.sleep(6)  # the gateway's first background count of the tasks
                await latency(base, operator, args.requests)
                print(uptime())
                redis = Redis.from_url(REDIS_URL)
                with worker(env, Path(tmp) / "worker.log"):
                    await wait_for_workers(redis, queue, 1)
                    await bulk_under_load(conn, base, api_port, (operator, producer), args)
                await redis.aclose()
            finally:
                api.terminate()
                emulator.terminate()
                api.wait(10)
                emulator.wait(10)
        await conn.close()
    print(uptime())


if __name__ == "__main__":
    asyncio.run(main())
