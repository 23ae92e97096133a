"""`herald status`: the fleet at a glance, for operators and scripts.

    herald status [--json] [--uncertain N]
    herald status --check-self

Shows the worker processes alive (their heartbeats in Redis, `herald.fleet`), the queue's
length, the tasks by status, the due backlog and how long its oldest task has waited, the
oldest pending task, the uncertain tasks (the first N by id), and each status callbacks'
endpoint with its events waiting, failing or paused. Plain text by default, `--json` for
scripts.

`--check-self` is the worker container's healthcheck: it reads Redis only and exits 0
when worker processes on this host heartbeat, as many as their `herald worker --workers`
asked for; otherwise 1 with a line saying what is missing. An unreachable store gives 1
and one line naming it, never a traceback.

Cost: one SCAN and one pipelined GET/PTTL per worker process in Redis, an LLEN, and four
statements in one read-only snapshot of PostgreSQL: the counts by status (a scan of
`tasks`, as the gateway's /metrics does), the oldest pending and the uncertain tasks
(both by the `(status, id)` index; `herald.db.stats`), and the callback endpoints with
their open events (`herald.callbacks.endpoints.backlog`, as the gateway's gauges).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from herald.config import Settings, get_settings
from herald.fleet import SeenBeat, read_beats
from herald.keys import queue_key
from herald.states import TaskStatus


class StoreError(RuntimeError):
    """PostgreSQL or Redis cannot be read; the message names which."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald status", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    parser.add_argument(
        "--uncertain", type=int, default=20, metavar="N", help="list the first N uncertain tasks"
    )
    parser.add_argument(
        "--check-self",
        action="store_true",
        help="healthcheck: exit 0 when this host's worker processes heartbeat",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = get_settings()
    try:
        if args.check_self:
            ok, line = asyncio.run(check_self(settings, socket.gethostname()))
            print(line)
            return 0 if ok else 1
        status = asyncio.run(gather(settings, uncertain_limit=max(0, args.uncertain)))
    except StoreError as exc:
        print(f"herald status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0


# --- gathering ---------------------------------------------------------------------------


async def _beats(settings: Settings) -> tuple[list[SeenBeat], int]:
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        return await read_beats(redis, settings.queue_name), int(
            await redis.llen(queue_key(settings.queue_name))
        )
    except (RedisError, OSError) as exc:
        raise StoreError(f"Redis (HERALD_REDIS_URL) cannot be read: {_reason(exc)}") from None
    finally:
        await redis.aclose()


async def _tasks(settings: Settings, uncertain_limit: int) -> dict[str, Any]:
    # Here, not at the top: the healthcheck (`--check-self`) reads Redis only and
    # starts faster without asyncpg and SQLAlchemy.
    import asyncpg

    from herald.callbacks import endpoints as callbacks
    from herald.db import stats
    from herald.db.pool import asyncpg_dsn

    try:
        conn = await asyncpg.connect(asyncpg_dsn(settings.database_url), timeout=5)
        try:
            # One snapshot: the uncertain count and its list agree.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                counts = await stats.count_tasks(conn)
                oldest = await stats.oldest_pending(conn)
                uncertain = await stats.uncertain_tasks(conn, uncertain_limit)
                endpoints = await callbacks.backlog(conn)
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise StoreError(
            f"PostgreSQL (HERALD_DATABASE_URL) cannot be read: {_reason(exc)}"
        ) from None
    wait = counts.oldest_due_wait
    return {
        "by_status": {status.value: n for status, n in counts.by_status.items()},
        "due_backlog": counts.due,
        "due_backlog_oldest_wait_seconds": None if wait is None else round(wait, 3),
        "oldest_pending": None
        if oldest is None
        else {
            "id": oldest.id,
            "chat_id": oldest.chat_id,
            "attempt": oldest.attempt,
            "created_at": oldest.created_at.isoformat(timespec="seconds"),
            "next_attempt_at": oldest.next_attempt_at.isoformat(timespec="seconds"),
            "age_seconds": round(oldest.age_seconds, 3),
        },
        "uncertain": [
            {
                "id": task.id,
                "client": task.client,
                "chat_id": task.chat_id,
                "attempt": task.attempt,
                "since": task.since.isoformat(timespec="seconds"),
                "last_error": task.last_error,
            }
            for task in uncertain
        ],
        "callbacks": [
            {
                "client": e.client,
                "updates": e.updates,
                "waiting": e.waiting,
                "oldest_wait_seconds": round(e.oldest_seconds, 3) if e.waiting else None,
                "failing_since": _iso_or_none(e.failing_since),
                "paused_at": _iso_or_none(e.paused_at),
            }
            for e in endpoints
        ],
    }


def _iso_or_none(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="seconds")


def _reason(exc: BaseException) -> str:
    # The exception's class and text, never the URL (it may carry a password).
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _worker(seen: SeenBeat) -> dict[str, Any]:
    beat = seen.beat
    return {
        "host": beat.host,
        "pid": beat.pid,
        "main_pid": beat.main_pid,
        "owner": beat.owner,
        "started_at": _iso(beat.started_at),
        "last_heartbeat_at": _iso(beat.heartbeat_at),
        "heartbeat_age_seconds": round(seen.age_seconds, 3),
        "in_flight": beat.in_flight,
        "messages_handled": beat.handled,
    }


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


async def gather(settings: Settings, *, uncertain_limit: int = 20) -> dict[str, Any]:
    """Everything `herald status` shows, as the object `--json` prints."""
    (beats, queue_length), tasks = await asyncio.gather(
        _beats(settings), _tasks(settings, uncertain_limit)
    )
    return {
        "workers": [_worker(seen) for seen in beats],
        "queue": {"name": settings.queue_name, "length": queue_length},
        "tasks": {k: v for k, v in tasks.items() if k not in ("uncertain", "callbacks")},
        "uncertain": {
            "count": tasks["by_status"][TaskStatus.UNCERTAIN],
            "tasks": tasks["uncertain"],
        },
        "callbacks": tasks["callbacks"],
    }


async def check_self(settings: Settings, host: str) -> tuple[bool, str]:
    """Do this host's worker processes heartbeat, all that their main processes started?"""
    beats, _ = await _beats(settings)
    mine = [seen.beat for seen in beats if seen.beat.host == host]
    if not mine:
        return False, f"unhealthy: no worker process on {host} heartbeats"
    alive = Counter(beat.main_pid for beat in mine)
    wanted = {beat.main_pid: beat.processes for beat in mine}
    short = [f"main {pid}: {alive[pid]} of {n}" for pid, n in wanted.items() if alive[pid] < n]
    if short:
        return False, f"unhealthy: worker processes missing on {host} ({'; '.join(short)})"
    return True, f"ok: {len(mine)} worker process(es) on {host} heartbeat"


# --- rendering ---------------------------------------------------------------------------


def render(status: dict[str, Any]) -> str:
    workers = status["workers"]
    lines = [f"workers: {len(workers)} process(es) heartbeating"]
    if workers:
        lines.append(
            f"  {'HOST':<20} {'PID':>7} {'MAIN':>7}  {'STARTED (UTC)':<25} {'HEARTBEAT':>9}"
            f"  {'IN FLIGHT':>9} {'HANDLED':>9}"
        )
        for w in workers:
            lines.append(
                f"  {w['host'][:20]:<20} {w['pid']:>7} {w['main_pid']:>7}"
                f"  {w['started_at']:<25} {w['heartbeat_age_seconds']:>7.1f}s"
                f"  {w['in_flight']:>9} {w['messages_handled']:>9}"
            )
    queue = status["queue"]
    lines.append(f"queue: {queue['length']} message(s) in {queue['name']}")
    tasks = status["tasks"]
    counts = ", ".join(f"{name} {n}" for name, n in tasks["by_status"].items())
    lines.append(f"tasks: {counts}")
    wait = tasks["due_backlog_oldest_wait_seconds"]
    lines.append(
        f"due backlog: {tasks['due_backlog']}"
        + (f" (the oldest due for {_duration(wait)})" if wait is not None else "")
    )
    oldest = tasks["oldest_pending"]
    if oldest is None:
        lines.append("oldest pending: none")
    else:
        lines.append(
            f"oldest pending: task {oldest['id']} (chat {oldest['chat_id']}), created"
            f" {_duration(oldest['age_seconds'])} ago, next attempt {oldest['next_attempt_at']}"
        )
    uncertain = status["uncertain"]
    lines.append(f"uncertain: {uncertain['count']}")
    for t in uncertain["tasks"]:
        line = (
            f"  task {t['id']} (client {t['client']}, chat {t['chat_id']},"
            f" attempt {t['attempt']}) since {t['since']}"
        )
        lines.append(f"{line}: {t['last_error']}" if t["last_error"] else line)
    if uncertain["count"] > len(uncertain["tasks"]):
        lines.append(f"  ... and {uncertain['count'] - len(uncertain['tasks'])} more")
    endpoints = status["callbacks"]
    lines.append(f"callbacks: {len(endpoints)} endpoint(s)")
    for e in endpoints:
        line = f"  {e['client']}: {e['waiting']} event(s) waiting"
        if e["oldest_wait_seconds"] is not None:
            line += f" (the oldest for {_duration(e['oldest_wait_seconds'])})"
        if e["paused_at"]:
            line += f", PAUSED since {e['paused_at']} (POST /api/callbacks/{e['client']}/resume)"
        elif e["failing_since"]:
            line += f", failing since {e['failing_since']}"
        lines.append(line)
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
