"""Pieces shared by the delivery benchmarks: a fresh database on the local PostgreSQL, a
private queue on the local Redis, the emulator and `herald worker` as subprocesses."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from herald.db import migrate
from herald.db.pool import asyncpg_dsn
from herald.keys import all_keys_pattern, workers_pattern
from tests.support import processes
from tests.support.databases import drop_database
from tests.support.processes import emulator_process, start_worker

PG_SERVER = os.environ.get("HERALD_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("HERALD_BENCH_REDIS", "redis://127.0.0.1:6379/0")
TOKEN = "123456:bench-token"
HERALD = [processes.HERALD]  # as an argv prefix


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    url = f"{PG_SERVER}/herald_bench_{secrets.token_hex(4)}"
    await asyncio.to_thread(migrate.upgrade, url)  # it runs its own event loop
    try:
        yield url
    finally:
        await drop_database(url)


@contextmanager
def emulator(*, limits: bool) -> Iterator[str]:
    # Keep every message and request of a run: the benchmarks count them all.
    flags = ["--keep", "500000", *([] if limits else ["--no-limits"])]
    with tempfile.TemporaryDirectory() as tmp, emulator_process(Path(tmp), *flags) as (_, url):
        yield url


def herald_env(database_url: str, queue: str, api_url: str, **extra: Any) -> dict[str, str]:
    settings: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "queue_name": queue,
        "bot_token": TOKEN,
        "telegram_api_url": api_url,
        "jwt_secret": "bench-secret-" + "x" * 32,
        "log_level": "WARNING",
    }
    return processes.herald_env(**{**settings, **extra})


@contextmanager
def worker(
    env: dict[str, str],
    log: Path,
    workers: int = 1,
    tasks: int = 100,
    metrics_port: int | None = None,
) -> Iterator[None]:
    """`herald worker`, its output in `log` (a path ending in .log)."""
    args = ["--max-async-tasks", str(tasks)]
    if metrics_port is not None:
        args += ["--metrics-port", str(metrics_port)]
    proc = start_worker(env, log.parent, *args, processes=workers, name=log.stem)
    try:
        yield
    finally:
        proc.stop(signal.SIGTERM, timeout=30)


async def wait_workers(redis: Any, queue: str, n: int, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while len([k async for k in redis.scan_iter(match=workers_pattern(queue))]) < n:
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not start")
        await asyncio.sleep(0.1)


async def insert_tasks(
    database_url: str, n: int, chats: int, *, enqueued: bool = True, key_prefix: str = "k"
) -> list[int]:
    """n pending tasks over `chats` chats, in one statement; their ids. Their idempotency
    keys are `key_prefix` and a number: another prefix for another batch."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            """
            INSERT INTO tasks (client, idempotency_key, request_hash, chat_id, content,
                               max_attempts, enqueued_at)
            SELECT 'bench', $4 || i, '\\x00', (1 + i % $2)::text,
                   jsonb_build_object('text', 'Your order ' || i || ' has shipped'), 5,
                   CASE WHEN $3 THEN now() END
            FROM generate_series(1, $1) AS i
            RETURNING id
            """,
            n,
            chats,
            enqueued,
            key_prefix,
        )
    finally:
        await conn.close()
    return [r["id"] for r in rows]


async def count_status(database_url: str, status: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM tasks WHERE status = $1", status)
    finally:
        await conn.close()
    return n


async def drop_queue_keys(redis: Any, queue: str) -> None:
    """Delete every Redis key of a benchmark's queue (`keys.all_keys_pattern`)."""
    keys = [k async for k in redis.scan_iter(match=all_keys_pattern(queue))]
    if keys:
        await redis.delete(*keys)


@contextmanager
def callback_receiver(secret: str, out: Path, **faults: float) -> Iterator[str]:
    """bench/callback_receiver.py in a process of its own; yields its URL. `faults`:
    rate_500, rate_timeout, rate_drop, sleep, seed (its command-line options)."""
    port = processes.free_port()
    argv = [
        sys.executable, str(Path(__file__).parent / "callback_receiver.py"),
        "--port", str(port), "--secret", secret, "--out", str(out),
    ]  # fmt: skip
    for name, value in faults.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "listening":
            raise SystemExit("the callback receiver did not start")
        yield f"http://127.0.0.1:{port}/herald-events"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


async def post_open_loop(
    api_url: str, token: str, rate: float, stop: asyncio.Event, tag: str, chats: int = 10_000
) -> tuple[list[float], float]:
    """Open loop through the API: one `POST /api/tasks` every 1/rate s over `chats` chats
    until `stop`; each answer's latency and the seconds the load ran."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(base_url=api_url) as client:

        async def post(i: int) -> None:
            started = time.perf_counter()
            async with client.post(
                "/api/tasks",
                json={"chat_id": 1 + i % chats, "text": f"bench {tag} {i}"},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"{tag}-{i}"},
            ) as resp:
                await resp.read()
                if resp.status != 201:
                    raise SystemExit(f"POST answered {resp.status}")
            latencies.append(time.perf_counter() - started)

        pending: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        i = 0
        while not stop.is_set():
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            pending.append(asyncio.create_task(post(i)))
            i += 1
        elapsed = time.perf_counter() - start
        await asyncio.gather(*pending)
    return latencies, elapsed


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far, 0 once it is gone (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def postgres_backends(database_url: str) -> list[int]:
    """The pids of the PostgreSQL backends connected to this benchmark's database."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [r["pid"] for r in rows]


async def redis_pid(redis: Any) -> int:
    return int((await redis.info("server"))["process_id"])


class CpuMeter:
    """CPU seconds spent by named groups of processes between `start()` and `stop()`.

    Pids are looked up at both ends (`pids()` is called twice), so a PostgreSQL backend
    opened during the run counts from 0."""

    def __init__(self, **groups: Any) -> None:
        self.groups = groups  # name -> async () -> list[int]
        self.before: dict[int, float] = {}
        self.spent: dict[str, float] = {}

    async def start(self) -> None:
        for pids in self.groups.values():
            for pid in await pids():
                self.before[pid] = cpu_seconds(pid)

    async def stop(self) -> dict[str, float]:
        for name, pids in self.groups.items():
            self.spent[name] = sum(
                cpu_seconds(pid) - self.before.get(pid, 0.0) for pid in await pids()
            )
        return self.spent

    def line(self, deliveries: int, seconds: float) -> str:
        parts = [
            f"{name} {spent / seconds * 100:.0f}% of a core"
            f" ({spent / max(1, deliveries) * 1e6:,.0f} us/delivery)"
            for name, spent in self.spent.items()
        ]
        return "CPU: " + ", ".join(parts)


async def post_batches(
    api_url: str, token: str, items: list[dict[str, Any]], size: int = 1000
) -> list[int]:
    """`POST /api/tasks/batch` in requests of `size` items; the ids created."""
    ids: list[int] = []
    async with aiohttp.ClientSession(base_url=api_url) as client:
        for i in range(0, len(items), size):
            async with client.post(
                "/api/tasks/batch",
                json={"items": items[i : i + size]},
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                body = await resp.json()
                if resp.status not in (200, 201) or body["refused"]:
                    raise SystemExit(f"batch POST answered {resp.status}: {str(body)[:300]}")
            ids += [r["id"] for r in body["results"]]
    return ids
