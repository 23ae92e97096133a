"""Webhook intake: updates stored per second by one gateway process, against its task
intake in the same run.

    .venv/bin/python bench/webhook_intake.py [--rounds 4] [--duration 8] [--connections 64]
                                             [--bound] [--log-level info]

One `herald api` process pinned to CPU 0 (`taskset`), wrk on CPU 1, PostgreSQL and Redis
floating: the setup of `bench/intake.py`. Rounds alternate `POST /api/tasks` (a task a
request, as `bench/intake.py` measures it) and `POST /telegram/webhook` (a new update a
request: a user's reply, stored as JSONB once by update_id), each on emptied tables. The
figure is the median of the per-round ratios webhook/intake; the goal is at least 0.8.
After each webhook round, the rows stored are counted: they must equal wrk's 2xx answers.
`--bound`: the chat the updates come from is bound to a recipient whose client's endpoint
takes updates, so each update is stored with its `message.received` event (one statement
still); the events are counted too. Without it the chat is bound to nobody: the store
plus one index probe.
Needs `wrk` (apt-get install -y wrk), PostgreSQL and Redis on localhost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.intake import (  # noqa: E402
    REDIS,
    SERVER_CPU,
    bench_database,
    cpu_seconds,
    wait_up,
    wrk,
)
from bench.intake import SECRET as JWT_SECRET  # noqa: E402
from herald.db.pool import asyncpg_dsn  # noqa: E402
from tests.support.databases import drop_database  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

WEBHOOK_SECRET = "bench-webhook-" + "w" * 32
BOT_TOKEN = "123456:bench-token"


def sql(url: str, statement: str) -> int:
    import asyncpg

    async def run() -> int:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            value = await conn.fetchval(statement)
            return int(value or 0)
        finally:
            await conn.close()

    return asyncio.run(run())


def counts(url: str, *tables: str) -> list[int]:
    """Rows of each table, from one snapshot (requests wrk abandoned may still commit)."""
    import asyncpg

    async def run() -> list[int]:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            row = await conn.fetchrow(
                "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)
            )
            return [int(v) for v in row]
        finally:
            await conn.close()

    return asyncio.run(run())


def empty(url: str, queue: str) -> None:
    import time

    time.sleep(1.5)  # requests wrk abandoned may still be inserting
    sql(url, "TRUNCATE task_events, tasks, telegram_updates, callback_events")
    subprocess.run(["redis-cli", "-u", REDIS, "DEL", queue], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--bound", action="store_true", help="updates from a recipient's chat, forwarded"
    )
    parser.add_argument(
        "--log-level", default="info", help="the gateway's (INFO, the default, unless told)"
    )
    args = parser.parse_args()

    db_url, queue, token = bench_database()
    if args.bound:
        # webhook_post.lua's chat, bound to a client whose endpoint takes updates (no
        # worker runs: the events stay in the outbox, counted after each round).
        bot_id = BOT_TOKEN.partition(":")[0]
        sql(
            db_url,
            "INSERT INTO callback_endpoints (client, url, hosts, secret, source, updates)"
            " VALUES ('bench', 'http://127.0.0.1:9/hook', '{127.0.0.1}', 'whsec_x', 'api', true)",
        )
        sql(
            db_url,
            f"INSERT INTO recipients (bot_id, client, external_id, chat_id)"
            f" VALUES ({bot_id}, 'bench', 'ann', '4242')",
        )
    port = free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, str(ROOT / ".venv/bin/herald"), "api", "--port", str(port)],
        cwd=ROOT,
        env={
            **os.environ,
            "HERALD_DATABASE_URL": db_url,
            "HERALD_JWT_SECRET": JWT_SECRET,
            "HERALD_REDIS_URL": REDIS,
            "HERALD_QUEUE_NAME": queue,
            "HERALD_LOG_LEVEL": args.log_level,
            "HERALD_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "HERALD_BOT_TOKEN": BOT_TOKEN,
        },
    )
    url = f"http://127.0.0.1:{port}"
    env = {"HERALD_TOKEN": token, "HERALD_WEBHOOK_SECRET": WEBHOOK_SECRET}
    kinds = {"intake": "intake_post.lua", "webhook": "webhook_post.lua"}
    try:
        wait_up(url + "/health", timeout=120)
        print("loadavg before:", Path("/proc/loadavg").read_text().strip(), flush=True)
        for script in kinds.values():  # warm-up
            wrk(url, script, args.connections, 3, {**env, "BENCH_RUN": "warm", "BENCH_BASE": "0"})
        results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
        for r in range(args.rounds):
            order = list(kinds) if r % 2 == 0 else list(reversed(kinds))
            for kind in order:
                empty(db_url, queue)
                cpu0 = cpu_seconds(proc.pid)
                base = str((r + 1) * 10**9)
                res = wrk(
                    url,
                    kinds[kind],
                    args.connections,
                    args.duration,
                    {**env, "BENCH_RUN": f"r{r}", "BENCH_BASE": base},
                )
                res["cpu_us"] = (cpu_seconds(proc.pid) - cpu0) / res["requests"] * 1e6
                table = "tasks" if kind == "intake" else "telegram_updates"
                res["stored"], events = counts(db_url, table, "callback_events")
                results[kind].append(res)
                print(
                    f"round {r} {kind:8} {res['rps']:8.0f} req/s  p50 {res['p50']:6.2f} ms"
                    f"  p99 {res['p99']:6.2f} ms  server CPU {res['cpu_us']:5.0f} us/req"
                    f"  non2xx {res['non2xx']:.0f}  rows {res['stored']:.0f}"
                    f" of {res['requests']:.0f} requests, events {events}",
                    flush=True,
                )
        ratios = [
            w["rps"] / i["rps"] for w, i in zip(results["webhook"], results["intake"], strict=True)
        ]
        print("per-round ratios webhook/intake:", " ".join(f"{x:.2f}" for x in ratios))
        for kind, runs in results.items():
            print(
                f"{kind:8} median {statistics.median(r['rps'] for r in runs):8.0f} req/s"
                f"  p50 {statistics.median(r['p50'] for r in runs):.2f} ms"
                f"  p99 {statistics.median(r['p99'] for r in runs):.2f} ms"
                f"  server CPU {statistics.median(r['cpu_us'] for r in runs):.0f} us/req"
            )
        print(f"median ratio webhook/intake: {statistics.median(ratios):.2f}")
        print("loadavg after:", Path("/proc/loadavg").read_text().strip())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        subprocess.run(["redis-cli", "-u", REDIS, "DEL", queue], capture_output=True)
        asyncio.run(drop_database(db_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
