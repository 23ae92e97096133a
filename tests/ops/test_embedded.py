"""The embedded servers of `herald dev` start from pip wheels and keep their data."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil
import redis

from herald.db.pool import asyncpg_dsn
from herald.devprocess import spawn, stop_process
from herald.embedded import EmbeddedPostgres, EmbeddedRedis


async def _query(url: str, *statements: str) -> object:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for sql in statements[:-1]:
            await conn.execute(sql)
        return await conn.fetchval(statements[-1])
    finally:
        await conn.close()


def test_postgres_keeps_its_data_across_restarts(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    url = server.start(database="postgres")
    assert url.startswith("postgresql+asyncpg://postgres@/postgres?host=")  # a Unix socket
    asyncio.run(_query(url, "CREATE TABLE kept (v int)", "INSERT INTO kept VALUES (42)"))
    server.stop()
    assert not (tmp_path / "pg" / "postmaster.pid").exists()  # really stopped

    again = EmbeddedPostgres(tmp_path / "pg")
    url = again.start(database="postgres")
    try:
        assert asyncio.run(_query(url, "SELECT v FROM kept")) == 42
    finally:
        again.stop()


def test_redis_keeps_its_data_across_restarts(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    client = redis.Redis.from_url(url)
    client.set("kept", "yes")
    client.close()
    server.stop()
    assert (tmp_path / "redis" / "dump.rdb").exists()

    again = EmbeddedRedis(tmp_path / "redis")
    url2 = again.start()
    try:
        client = redis.Redis.from_url(url2)
        assert client.get("kept") == b"yes"
        client.close()
    finally:
        again.stop()


def test_stopping_a_child_stops_its_own_children() -> None:
    # A parent that starts a grandchild and ignores SIGTERM, as a stuck server might.
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = spawn([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    grandchild = psutil.Process(int(proc.stdout.readline()))

    code = stop_process(proc, timeout=0.5)

    assert code == -9  # SIGTERM ignored: killed after the timeout
    _, alive = psutil.wait_procs([grandchild], timeout=5)
    assert not alive
    proc.stdout.close()
