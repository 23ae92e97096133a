"""Sustained deliveries at Telegram's limits: at least 29/s for 60 s at 30/s, and no 429;
a task of priority 10 posted into the backlog is sent within 2 s.

    .venv/bin/python bench/delivery_limited.py [--seconds 60] [--workers 2]
        [--backlog N] [--max-wait SECONDS] [--log-level INFO]

The emulator enforces Telegram's limits (30/s in total, 1/s per chat, 20/min per group)
and Herald runs with the same defaults. A backlog of (seconds + 10) x 30 tasks (or
`--backlog`) over 500 chats, of priority 0, is posted through `herald api` (`POST
/api/tasks/batch`); `herald worker --workers N` drains it. Halfway through the measured
window one task of priority 10 is posted (`POST /api/tasks`) and its time from the POST
to its arrival in the emulator printed. From the emulator's log: the deliveries per
second over `--seconds` (from 2 s after the first delivery), the slowest single second,
and the number of 429 answers. From the workers' metrics: the deferrals per second
(tasks deferred for a busy chat or group), the price of a backlog; the workers' CPU per
delivery. `--max-wait` sets `HERALD_RATE_MAX_WAIT_SECONDS`, the bot-wide horizon. Prints
the load average.
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

import aiohttp
from redis.asyncio import Redis

from bench.delivery_common import (
    REDIS_URL,
    cpu_seconds,
    drop_queue_keys,
    emulator,
    fresh_database,
    herald_env,
    loadavg,
    post_batches,
    wait_workers,
)
from bench.stack import free_port
from herald.api.auth import mint_token
from herald.config import Settings
from herald.emulator.remote import RemoteEmulator
from tests.support.processes import start_api, start_worker


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
    parser.add_argument("--log-level", default="INFO")
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
            env = herald_env(database_url, queue, base_url, log_level=args.log_level, **extra)
            token = mint_token(
                Settings(_env_file=None, jwt_secret=env["HERALD_JWT_SECRET"]),
                "bench",
                ["tasks:write"],
            )
            api, api_url = start_api(env, Path(tmp))
            proc = start_worker(
                env,
                Path(tmp),
                "--max-async-tasks",
                "100",
                "--metrics-port",
                str(metrics_port),
                processes=args.workers,
            )
            try:
                await wait_workers(redis, queue, args.workers)
                items = [
                    {"idempotency_key": f"k{i}", "chat_id": 1 + i % 500, "text": f"backlog {i}"}
                    for i in range(n)
                ]
                await post_batches(api_url, token, items)
                async with RemoteEmulator(base_url) as remote:
                    await remote.wait_messages(1, timeout=60)
                    first = (await remote.messages())[0]["time"]
                    end = first + 2 + args.seconds
                    await asyncio.sleep(max(0.0, first + 2 - time.time()))
                    deferrals_start = await deferrals(metrics_port)
                    cpu_start = sum(cpu_seconds(pid) for pid in proc.pids())
                    load_start = loadavg()
                    await asyncio.sleep(max(0.0, first + 2 + args.seconds / 2 - time.time()))
                    posted = time.time()
                    async with (
                        aiohttp.ClientSession(base_url=api_url) as client,
                        client.post(
                            "/api/tasks",
                            json={"chat_id": 999_999, "text": "priority 10", "priority": 10},
                            headers={
                                "Authorization": f"Bearer {token}",
                                "Idempotency-Key": "probe",
                            },
                        ) as resp,
                    ):
                        if resp.status != 201:
                            raise SystemExit(f"the probe's POST answered {resp.status}")
                    await asyncio.sleep(max(0.0, end - time.time()))
                    deferred = await deferrals(metrics_port) - deferrals_start
                    cpu = sum(cpu_seconds(pid) for pid in proc.pids()) - cpu_start
                    load_end = loadavg()
                    await asyncio.sleep(1)
                    messages = await remote.messages()
                    received = await remote.received()
            finally:
                proc.stop(timeout=30)
                api.stop(timeout=10)
            await drop_queue_keys(redis, queue)
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
    probe = [m["time"] for m in messages if m["text"] == "priority 10"]
    print(
        f"priority 10 into the backlog: POST to the emulator in {probe[0] - posted:.2f} s"
        if probe
        else "priority 10 into the backlog: not delivered within the window"
    )
    print(
        f"worker CPU: {cpu / args.seconds * 100:.0f}% of a core,"
        f" {cpu / max(1, len(in_window)) * 1e6:,.0f} us/delivery"
    )
    print(f"load average: {load_start} -> {load_end}")


if __name__ == "__main__":
    asyncio.run(main())
