"""Soak: a steady rate through the gateway for ten minutes, memory sampled throughout.

    .venv/bin/python bench/soak.py [--duration 600] [--rate 25] [--interval 5] [--json out.json]

Runs its own PostgreSQL and redis-server (see bench/stack.py), `herald emulator` with
Telegram's limits, `herald api` and `herald worker --workers 2` with Herald's default
rate limits (30/s in total, 1/s per chat). Producers POST `--rate` tasks a second, paced
(open loop), spread over 200 chats; a request that fails on the connection is retried
with the same Idempotency-Key, as a producer would. Every `--interval` seconds it reads the resident
memory (VmRSS) of the gateway and of each worker process (the taskiq manager and its
children) from /proc. At the end it waits for the backlog to drain and reports memory at
the start, after warm-up, at the end and at its peak, with the growth over the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis import Redis

sys.path.insert(0, str(Path(__file__).parent))
from stack import JWT_SECRET, Proc, Stack, rss_kib

from herald.api.auth import mint_token
from herald.config import Settings
from herald.keys import workers_pattern

WARMUP_SECONDS = 60.0


def wait_for_workers(redis_url: str, queue_name: str, count: int, timeout: float = 60) -> None:
    """Until `count` worker processes announced themselves (workers/tasks.py)."""
    redis = Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while len(redis.keys(workers_pattern(queue_name))) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} workers started in {timeout} s")
            time.sleep(0.2)
    finally:
        redis.close()


class Soak:
    def __init__(self, stack: Stack, args: argparse.Namespace) -> None:
        self.stack = stack
        self.args = args
        self.samples: list[dict[str, Any]] = []
        self.statuses: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.sent = 0
        self.api: Proc | None = None
        self.worker: Proc | None = None
        self.api_url = ""
        self.token = ""

    def boot(self) -> None:
        self.stack.start_infra()
        _, emulator_url = self.stack.start_emulator()
        env = self.stack.herald_env(telegram_api_url=emulator_url)
        self.stack.migrate(env)
        self.api, self.api_url = self.stack.start_api(env)
        self.worker = self.stack.start_worker("worker", env, processes=2)
        wait_for_workers(self.stack.redis.url, env["HERALD_QUEUE_NAME"], 2)
        settings = Settings(_env_file=None, jwt_secret=JWT_SECRET)  # type: ignore[call-arg]
        self.token = mint_token(settings, "soak", ["tasks:write"], ttl=7200)

    def sample(self, t: float) -> None:
        assert self.api is not None
        assert self.worker is not None
        workers = {pid: rss_kib(pid) for pid in self.worker.pids()}
        self.samples.append(
            {
                "t": round(t, 1),
                "gateway_kib": sum(rss_kib(pid) for pid in self.api.pids()),
                "workers_kib": workers,
                "worker_total_kib": sum(workers.values()),
                "sent": self.sent,
            }
        )

    async def _post(self, client: httpx.AsyncClient, n: int, gate: asyncio.Semaphore) -> None:
        body = {"chat_id": 5000 + n % 200, "text": f"soak #{n}"}
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": f"soak-{n}"}
        async with gate:
            started = time.perf_counter()
            for _ in range(3):
                # A producer retries a failed request with the same key: at most one task.
                try:
                    response = await client.post("/api/tasks", json=body, headers=headers)
                except httpx.TransportError as exc:
                    self.statuses[type(exc).__name__] += 1
                    continue
                self.statuses[str(response.status_code)] += 1
                break
            self.latencies.append(time.perf_counter() - started)

    async def run(self) -> None:
        duration, rate = self.args.duration, self.args.rate
        gate = asyncio.Semaphore(64)
        pending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(base_url=self.api_url, timeout=30) as client:
            start = time.monotonic()
            next_sample = 0.0
            while (elapsed := time.monotonic() - start) < duration:
                if elapsed >= next_sample:
                    self.sample(elapsed)
                    next_sample += self.args.interval
                due = int(elapsed * rate) + 1
                while self.sent < due:
                    task = asyncio.create_task(self._post(client, self.sent, gate))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    self.sent += 1
                await asyncio.sleep(min(1 / rate, 0.05))
            await asyncio.gather(*pending)
            self.sample(time.monotonic() - start)

    async def drain(self) -> dict[str, int]:
        conn = await asyncpg.connect(self.stack.database_url.replace("+asyncpg", ""))
        try:
            deadline = time.monotonic() + 120
            while True:
                rows = await conn.fetch("SELECT status, count(*) AS n FROM tasks GROUP BY status")
                counts = {r["status"]: int(r["n"]) for r in rows}
                if counts.get("pending", 0) + counts.get("sending", 0) == 0:
                    return counts
                if time.monotonic() > deadline:
                    return counts
                await asyncio.sleep(1)
        finally:
            await conn.close()


def _mib(kib: float) -> float:
    return round(kib / 1024, 1)


def memory_summary(samples: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [s[key] for s in samples]
    warm = next((s[key] for s in samples if s["t"] >= WARMUP_SECONDS), values[0])
    return {
        "start_mib": _mib(values[0]),
        "after_warmup_mib": _mib(warm),
        "end_mib": _mib(values[-1]),
        "max_mib": _mib(max(values)),
        "growth_after_warmup_mib": _mib(values[-1] - warm),
    }


def report(soak: Soak, statuses: dict[str, int]) -> dict[str, Any]:
    latencies = sorted(soak.latencies)

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    return {
        "duration_s": soak.args.duration,
        "rate_per_s": soak.args.rate,
        "tasks_sent": soak.sent,
        "http_statuses": dict(soak.statuses),
        "intake_latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
        "task_statuses": statuses,
        "gateway": memory_summary(soak.samples, "gateway_kib"),
        "workers": memory_summary(soak.samples, "worker_total_kib"),
        "samples": soak.samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=25.0, help="tasks per second")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--json", type=Path, help="write the report with every sample here")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="herald-soak-"))
    try:
        with Stack(root) as stack:
            soak = Soak(stack, args)
            soak.boot()
            asyncio.run(soak.run())
            statuses = asyncio.run(soak.drain())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = report(soak, statuses)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(
        f"{result['tasks_sent']} tasks in {args.duration:.0f} s at {args.rate}/s; "
        f"HTTP {result['http_statuses']}; intake latency {result['intake_latency_ms']} ms; "
        f"tasks {statuses}"
    )
    for name in ("gateway", "workers"):
        m = result[name]
        print(
            f"{name:8} RSS MiB: start {m['start_mib']}, after {WARMUP_SECONDS:.0f} s "
            f"{m['after_warmup_mib']}, end {m['end_mib']}, max {m['max_mib']}, "
            f"growth after warm-up {m['growth_after_warmup_mib']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
