"""Intake benchmark: Herald's POST /api/tasks against a minimal FastAPI + asyncpg baseline.

    .venv/bin/python bench/intake.py [--rounds 5] [--duration 10] [--connections 64]

Both servers run as one uvicorn process pinned to CPU 0 (`taskset`), wrk runs on CPU 1;
PostgreSQL and Redis float. The two are measured alternately, round after round, each on
an emptied table, so machine noise hits both; the ratio reported is the median of the
per-round ratios. Then batch intake: 500 items a request through /api/tasks/batch.
Needs `wrk` (apt-get install -y wrk), PostgreSQL and Redis on localhost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from herald.api.auth import mint_token  # noqa: E402
from herald.config import Settings  # noqa: E402
from herald.db import migrate  # noqa: E402
from herald.db.pool import asyncpg_dsn  # noqa: E402
from tests.support.databases import drop_database  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

SECRET = "bench-secret-" + "x" * 32
PG = os.environ.get("HERALD_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS = os.environ.get("HERALD_BENCH_REDIS", "redis://127.0.0.1:6379/0")
SERVER_CPU, LOAD_CPU = "0", "1"


def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (robust to other load on the machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, script: str, connections: int, duration: float, env: dict[str, str]
) -> dict[str, float]:
    cmd = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{int(duration)}s",
        "--latency",
        "-s",
        str(ROOT / "bench" / script),
        url,
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **env}, check=True
    ).stdout

    def latency_ms(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert total, out
    non2xx = re.search(r"non2xx=(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    assert rps, out
    assert non2xx, out
    return {
        "rps": float(rps.group(1)),
        "requests": float(total.group(1)),
        "p50": latency_ms("50"),
        "p99": latency_ms("99"),
        "non2xx": float(non2xx.group(1)),
        "socket_errors": 1.0 if errors else 0.0,
    }


def empty_tables(url: str, queue: str) -> None:
    """Start a measurement on empty tables and an empty queue.

    After wrk stops, requests it abandoned may still be inserting: wait, or TRUNCATE
    (which locks tasks, then task_events) deadlocks with them.
    """
    time.sleep(1.5)
    psql(url, "TRUNCATE task_events, tasks")
    subprocess.run(["redis-cli", "-u", REDIS, "DEL", queue], capture_output=True)


def psql(url: str, sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def bench_database() -> tuple[str, str, str]:
    """A new database migrated to head, a queue name of its own, and a producer's token:
    (database URL, queue name, token)."""
    db_url = f"{PG}/herald_bench_{secrets.token_hex(4)}"
    queue = f"herald:bench:{secrets.token_hex(4)}"
    migrate.upgrade(db_url)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=db_url, jwt_secret=SECRET, redis_url=REDIS, queue_name=queue
    )
    return db_url, queue, mint_token(settings, "bench", ["tasks:write"], ttl=24 * 3600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--batch-duration", type=float, default=10)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument(
        "--baseline-no-reset",
        action="store_true",
        help="the baseline's pool skips asyncpg's reset query too, as Herald's does",
    )
    args = parser.parse_args()

    db_url, queue, token = bench_database()
    base_port, herald_port = free_port(), free_port()
    py = str(ROOT / ".venv" / "bin")
    procs = [
        subprocess.Popen(
            [
                "taskset",
                "-c",
                SERVER_CPU,
                f"{py}/uvicorn",
                "bench.baseline_app:app",
                "--port",
                str(base_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "BASELINE_DSN": asyncpg_dsn(db_url),
                "BASELINE_NO_RESET": "1" if args.baseline_no_reset else "0",
            },
        ),
        subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, f"{py}/herald", "api", "--port", str(herald_port)],
            cwd=ROOT,
            env={
                **os.environ,
                "HERALD_DATABASE_URL": db_url,
                "HERALD_JWT_SECRET": SECRET,
                "HERALD_REDIS_URL": REDIS,
                "HERALD_QUEUE_NAME": queue,
                "HERALD_LOG_LEVEL": "warning",
            },
        ),
    ]
    pids = {"baseline": procs[0].pid, "herald": procs[1].pid}
    targets = {
        "baseline": f"http://127.0.0.1:{base_port}",
        "herald": f"http://127.0.0.1:{herald_port}",
    }
    try:
        wait_up(targets["baseline"] + "/openapi.json")
        wait_up(targets["herald"] + "/health")
        print(
            "uptime before:",
            subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        )
        results: dict[str, list[dict[str, float]]] = {"baseline": [], "herald": []}
        for name, url in targets.items():  # warm-up: connections, prepared statements, JIT-free
            wrk(
                url,
                "intake_post.lua",
                args.connections,
                3,
                {"HERALD_TOKEN": token, "BENCH_RUN": f"warm-{name}"},
            )
        for r in range(args.rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                empty_tables(db_url, queue)
                cpu0 = cpu_seconds(pids[name])
                res = wrk(
                    targets[name],
                    "intake_post.lua",
                    args.connections,
                    args.duration,
                    {"HERALD_TOKEN": token, "BENCH_RUN": f"r{r}-{name}"},
                )
                res["cpu_us"] = (cpu_seconds(pids[name]) - cpu0) / res["requests"] * 1e6
                results[name].append(res)
                print(
                    f"round {r} {name:8} {res['rps']:8.0f} req/s  p50 {res['p50']:6.2f} ms"
                    f"  p99 {res['p99']:6.2f} ms  server CPU {res['cpu_us']:5.0f} us/req"
                    f"  non2xx {res['non2xx']:.0f}",
                    flush=True,
                )
        ratios = (
            [1.0]
            if args.rounds == 0
            else [
                h["rps"] / b["rps"]
                for h, b in zip(results["herald"], results["baseline"], strict=True)
            ]
        )
        print("per-round ratios:", " ".join(f"{x:.2f}" for x in ratios))
        for name, runs in results.items():
            if not runs:
                continue
            print(
                f"{name:8} median {statistics.median(r['rps'] for r in runs):8.0f} req/s"
                f"  p50 {statistics.median(r['p50'] for r in runs):.2f} ms"
                f"  p99 {statistics.median(r['p99'] for r in runs):.2f} ms"
                f"  server CPU {statistics.median(r['cpu_us'] for r in runs):.0f} us/req"
            )
        print(f"median ratio herald/baseline: {statistics.median(ratios):.2f}")
        if not args.skip_batch:
            empty_tables(db_url, queue)
            cpu0 = cpu_seconds(pids["herald"])
            res = wrk(
                targets["herald"],
                "intake_batch.lua",
                args.batch_connections,
                args.batch_duration,
                {"HERALD_TOKEN": token, "BENCH_RUN": "batch", "BATCH_SIZE": "500"},
            )
            tasks = res["requests"] * 500
            print(
                f"batch: {res['rps'] * 500:8.0f} tasks/s ({res['rps']:.1f} req/s of 500)"
                f"  p50 {res['p50']:.1f} ms  p99 {res['p99']:.1f} ms  non2xx {res['non2xx']:.0f}"
                f"  server CPU {(cpu_seconds(pids['herald']) - cpu0) / tasks * 1e6:.0f} us/task"
            )
        print(
            "uptime after:",
            subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        subprocess.run(["redis-cli", "-u", REDIS, "DEL", queue], capture_output=True)
        asyncio.run(drop_database(db_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
