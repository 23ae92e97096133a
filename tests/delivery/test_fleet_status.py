"""`herald status` through the real processes: the workers alive, queue, backlog, tasks;
`herald status --check-self`, the worker container's healthcheck."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio import Redis

from herald.config import Settings
from tests.delivery.conftest import insert_task
from tests.delivery.workers import HERALD, herald_env, wait_for

ROOT = Path(__file__).resolve().parents[2]


async def herald(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `herald ARGS` in `env`; exit status and stdout."""
    proc = await asyncio.create_subprocess_exec(
        HERALD, *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return int(proc.returncode or 0), out.decode()


async def status(env: dict[str, str]) -> dict[str, Any]:
    code, out = await herald(env, "status", "--json")
    assert code == 0, out
    result: dict[str, Any] = json.loads(out)
    return result


def healthcheck_command() -> list[str]:
    """The compose worker service's healthcheck, as docker would run it."""
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    test: list[str] = compose["services"]["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert test[1] == "herald"
    return test[2:]


async def test_status_counts_the_queue_the_backlog_and_the_tasks_by_status(
    db: Any, redis: Redis, enqueue: Any, settings: Settings
) -> None:
    env = herald_env(settings)  # and no worker running
    due = [await insert_task(db, chat_id=20 + i) for i in range(5)]
    later = datetime.now(UTC) + timedelta(hours=1)
    await insert_task(db, chat_id=30, send_at=later)
    await insert_task(db, chat_id=31, send_at=later)
    uncertain = [await insert_task(db, chat_id=40 + i) for i in range(3)]
    await db.execute(
        "UPDATE tasks SET status = 'uncertain', last_error = 'timeout' WHERE id = ANY($1)",
        uncertain,
    )
    done = await insert_task(db, chat_id=50)
    await db.execute("UPDATE tasks SET status = 'delivered' WHERE id = $1", done)
    await db.execute(
        "UPDATE tasks SET created_at = now() - interval '90 seconds',"
        " next_attempt_at = now() - interval '60 seconds' WHERE id = $1",
        due[0],
    )
    await enqueue(due)
    # A paused status callbacks' endpoint with an event waiting for 30 s.
    await db.execute(
        "INSERT INTO callback_endpoints (client, url, hosts, secret, source, failing_since,"
        " paused_at) VALUES ('shop', 'http://127.0.0.1:9/h', '{127.0.0.1}', 'whsec_x', 'api',"
        " now() - interval '1 day', now())"
    )
    await db.execute(
        "INSERT INTO callback_events (task_id, client, seq, type, payload, created_at)"
        " VALUES ($1, 'shop', 1, 'task.delivered', '{}', now() - interval '30 seconds')",
        done,
    )

    got = await status(env)
    assert got["workers"] == []
    assert got["queue"] == {"name": settings.queue_name, "length": 5}
    assert got["tasks"]["by_status"] == {
        "pending": 7,
        "sending": 0,
        "delivered": 1,
        "failed": 0,
        "cancelled": 0,
        "uncertain": 3,
    }
    assert got["tasks"]["due_backlog"] == 5
    assert 60 <= got["tasks"]["due_backlog_oldest_wait_seconds"] < 70
    oldest = got["tasks"]["oldest_pending"]
    assert oldest["id"] == due[0]
    assert 90 <= oldest["age_seconds"] < 100
    assert got["uncertain"]["count"] == 3
    assert [t["id"] for t in got["uncertain"]["tasks"]] == uncertain
    assert {t["last_error"] for t in got["uncertain"]["tasks"]} == {"timeout"}
    [endpoint] = got["callbacks"]
    assert endpoint["client"] == "shop"
    assert endpoint["waiting"] == 1
    assert 30 <= endpoint["oldest_wait_seconds"] < 40
    assert endpoint["paused_at"] is not None
    assert endpoint["failing_since"] < endpoint["paused_at"]
    assert "whsec" not in json.dumps(got)  # never a secret

    code, text = await herald(env, "status", "--uncertain", "2")
    assert code == 0
    assert "workers: 0 process(es) heartbeating" in text
    assert f"queue: 5 message(s) in {settings.queue_name}" in text
    assert re.search(r"^due backlog: 5 \(the oldest due for 6\d s\)$", text, re.M), text
    assert f"oldest pending: task {due[0]} (chat 20)" in text
    assert f"task {uncertain[0]} (client tests, chat 40, attempt 0)" in text
    assert "... and 1 more" in text
    assert "callbacks: 1 endpoint(s)" in text
    assert re.search(
        r"^  shop: 1 event\(s\) waiting \(the oldest for 3\d s\), PAUSED since ", text, re.M
    ), text
    # No worker on this host: the healthcheck fails.
    assert (await herald(env, *healthcheck_command()))[0] == 1


async def test_status_lists_live_workers_and_drops_a_stopped_or_killed_one(
    db: Any, start_worker: Any
) -> None:
    started = time.time()
    worker = await start_worker(workers=2)
    assert worker.proc is not None
    pids = sorted(await worker.pids())

    got = await status(worker.env)
    assert sorted(w["pid"] for w in got["workers"]) == pids
    for w in got["workers"]:
        assert w["host"] == socket.gethostname()
        assert w["main_pid"] == worker.proc.pid
        assert w["heartbeat_age_seconds"] < 3
        assert started - 1 <= datetime.fromisoformat(w["started_at"]).timestamp() <= time.time()
        assert datetime.fromisoformat(w["last_heartbeat_at"]) >= datetime.fromisoformat(
            w["started_at"]
        )
    assert await herald(worker.env, *healthcheck_command()) == (
        0,
        f"ok: 2 worker process(es) on {socket.gethostname()} heartbeat\n",
    )

    stopped, other = pids
    os.kill(stopped, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        await wait_for(lambda: _listed(worker.env, [other]), 10, "the stopped process gone", 0.5)
        code, line = await herald(worker.env, *healthcheck_command())
        assert code == 1
        assert f"main {worker.proc.pid}: 1 of 2" in line
        # Frozen past redis-py's 5 s socket timeout, which once ended the process.
        await asyncio.sleep(max(0.0, 6 - (time.monotonic() - frozen)))
    finally:
        os.kill(stopped, signal.SIGCONT)
    # The same process again, not a replacement.
    await wait_for(lambda: _listed(worker.env, pids), 10, "the stopped process back", 0.5)
    assert (await herald(worker.env, *healthcheck_command()))[0] == 0

    os.kill(other, signal.SIGKILL)
    # taskiq starts a new process in its place: the dead pid leaves, a new one comes.
    await wait_for(lambda: _replaced(worker.env, other, stopped), 20, "the killed process replaced")


async def _listed(env: dict[str, str], pids: list[int]) -> bool:
    return sorted(w["pid"] for w in (await status(env))["workers"]) == sorted(pids)


async def _replaced(env: dict[str, str], dead: int, alive: int) -> bool:
    listed = {w["pid"] for w in (await status(env))["workers"]}
    return dead not in listed and alive in listed and len(listed) == 2
