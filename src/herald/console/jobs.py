"""Bulk actions: run in the gateway process that started them, in batches, progress in Redis.

A job moves the tasks of a selection, or of everything a filter matched when the operator
confirmed (ids up to the largest one then, so tasks created later are left alone), in
batches of `BATCH` newest first. Each batch is one statement (`db.console.move_batch`):
each task moves only from a status the operator table allows, with its own audit event
naming the operator and the job. Resent ids go to the workers after each batch's commit,
as the API's PATCH does. Between batches the job sleeps a little, so intake, delivery and
the API keep their share of PostgreSQL.

Progress lives in a Redis hash (`{queue}:console:bulk:{id}`, kept a week), so any gateway
process can show it. A job whose process stops is marked `interrupted` when it can be
(a clean shutdown); otherwise its `updated_at` stops moving, which the page points out.
Starting it again is safe: the tasks it already moved no longer match.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis

from herald.console.actions import Action
from herald.db import console as console_db
from herald.states import TaskStatus

log = structlog.get_logger(__name__)

BATCH = 500
PAUSE_SECONDS = 0.02
KEEP_SECONDS = 7 * 24 * 3600
# No update for this long while running: the process running it has likely stopped.
STALE_SECONDS = 30.0
_DEADLOCK_RETRIES = 5


@dataclass(frozen=True, slots=True)
class BulkSpec:
    action: Action
    operator: str  # the actor, "operator:NAME"
    description: str
    total: int  # as counted on the confirmation page
    reason: str | None
    ids: list[int] | None = None
    filter: console_db.ConsoleFilter | None = None
    max_id: int = 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def job_key(queue_name: str, job_id: str) -> str:
    return f"{queue_name}:console:bulk:{job_id}"


def valid_job_id(job_id: str) -> bool:
    return len(job_id) == 16 and all(c in "0123456789abcdef" for c in job_id)


async def read_job(redis: Redis, queue_name: str, job_id: str) -> dict[str, Any] | None:
    raw = await redis.hgetall(job_key(queue_name, job_id))
    if not raw:
        return None
    job: dict[str, Any] = {_text(k): _text(v) for k, v in raw.items()}
    for name in ("total", "moved", "seen", "batches"):
        job[name] = int(job.get(name, 0))
    for name in ("started_at", "updated_at", "finished_at"):
        job[name] = float(job[name]) if job.get(name) else None
    job["id"] = job_id
    job["running"] = job["state"] == "running"
    job["stale"] = (
        job["running"]
        and job["updated_at"] is not None
        and time.time() - job["updated_at"] > STALE_SECONDS
    )
    return job


class BulkJobs:
    """The jobs this gateway process runs; stopped (marked interrupted) with the process."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def start(self, gw: Any, spec: BulkSpec) -> str:
        job_id = secrets.token_hex(8)
        task = asyncio.create_task(self._run(gw, job_id, spec))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return job_id

    async def aclose(self) -> None:
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, gw: Any, job_id: str, spec: BulkSpec) -> None:
        redis: Redis = gw.redis
        key = job_key(gw.settings.queue_name, job_id)
        now = time.time()
        await redis.hset(
            key,
            mapping={
                "action": spec.action.name,
                "label": spec.action.label,
                "description": spec.description,
                "operator": spec.operator,
                "total": spec.total,
                "moved": 0,
                "seen": 0,
                "batches": 0,
                "state": "running",
                "started_at": now,
                "updated_at": now,
                "error": "",
            },
        )
        await redis.expire(key, KEEP_SECONDS)
        log.info("console_bulk_started", job=job_id, operator=spec.operator, total=spec.total)
        move = console_db.BulkMove(
            target=spec.action.target,
            action=spec.action.audit_name,
            actor=spec.operator,
            reason=spec.reason,
            details={"bulk": job_id},
        )
        moved = seen = batches = 0
        below: int | None = None
        state, error = "done", ""
        try:
            while True:
                result = await self._batch(gw.pool, move, spec, below)
                batches += 1
                moved += len(result.moved)
                seen += result.seen
                if result.moved and spec.action.target is TaskStatus.PENDING:
                    await gw.enqueuer.enqueue(result.moved, None)
                await redis.hset(
                    key,
                    mapping={
                        "moved": moved,
                        "seen": seen,
                        "batches": batches,
                        "updated_at": time.time(),
                    },
                )
                if spec.ids is not None or result.seen < BATCH or result.lowest is None:
                    break
                below = result.lowest
                await asyncio.sleep(PAUSE_SECONDS)
        except asyncio.CancelledError:
            state, error = "interrupted", "the gateway process stopped"
            raise
        except Exception as exc:
            log.exception("console_bulk_failed", job=job_id)
            state, error = "failed", type(exc).__name__
        finally:
            log.info("console_bulk_finished", job=job_id, state=state, moved=moved)
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    redis.hset(
                        key,
                        mapping={
                            "state": state,
                            "error": error,
                            "finished_at": time.time(),
                            "updated_at": time.time(),
                        },
                    )
                )

    async def _batch(
        self, pool: Any, move: console_db.BulkMove, spec: BulkSpec, below: int | None
    ) -> console_db.BatchResult:
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                return await console_db.move_batch(
                    pool,
                    move,
                    ids=spec.ids,
                    f=spec.filter,
                    max_id=spec.max_id,
                    below_id=below,
                    limit=BATCH,
                )
            except asyncpg.exceptions.TransactionRollbackError:
                # A deadlock victim or serialization failure: nothing of the batch happened.
                if attempt == _DEADLOCK_RETRIES - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")
