"""Worker heartbeats: which worker processes are alive, read by `herald status`.

Each worker process keeps one Redis key, `{queue_name}:workers:{owner}`, holding a JSON
`Beat` (host, pid, main pid, start time, last heartbeat, deliveries in flight). It
rewrites the key every `HERALD_WORKER_HEARTBEAT_SECONDS` with a time to live of three
intervals, and deletes it when it stops cleanly. A process that is killed, stopped
(SIGSTOP) or stuck stops rewriting it, and Redis drops the key within three intervals.

Why Redis and not a PostgreSQL table: the time to live does the forgetting, with no
cleanup job and no dead rows; a beat per process per second would be write churn (and
vacuum work) on the table the hot paths use; and a worker that cannot reach Redis cannot
take messages either, so it is fair that it looks absent. A Redis flush loses the keys for
one interval only, since every beat writes the whole record again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import structlog
from redis.asyncio import Redis

from herald.keys import worker_key, workers_pattern

log = structlog.get_logger(__name__)

# Missed beats before the key expires: one late beat on a busy machine is not a death.
TTL_INTERVALS = 3


@dataclass(frozen=True, slots=True)
class Beat:
    owner: str
    host: str
    pid: int
    # The `herald worker` process that forked this one, and how many it runs.
    main_pid: int
    processes: int
    started_at: float  # Unix time, the worker's clock
    heartbeat_at: float
    # The key's full time to live: with its remaining one, the beat's age.
    ttl_ms: int
    in_flight: int = 0
    handled: int = 0  # queue messages handled since start

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Beat:
        data = json.loads(raw)
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def pid_of(raw: bytes | str) -> int:
    """The pid in a presence key's value (for callers that only wait for workers)."""
    return Beat.from_json(raw).pid


@dataclass(frozen=True, slots=True)
class SeenBeat:
    beat: Beat
    # From the key's remaining time to live: Redis's clock, so no skew between hosts.
    age_seconds: float


async def read_beats(redis: Redis, queue_name: str) -> list[SeenBeat]:
    """Every worker process whose heartbeat has not expired, oldest start first."""
    keys = [k async for k in redis.scan_iter(match=workers_pattern(queue_name), count=1000)]
    if not keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
            pipe.pttl(key)
        answers = await pipe.execute()
    seen: list[SeenBeat] = []
    for raw, pttl in zip(answers[::2], answers[1::2], strict=True):
        if raw is None or pttl is None or pttl < 0:
            continue  # expired between SCAN and GET
        try:
            beat = Beat.from_json(raw)
        except (ValueError, TypeError, KeyError):
            continue  # not a heartbeat record (an older version's bare pid)
        seen.append(SeenBeat(beat, max(0.0, (beat.ttl_ms - pttl) / 1000)))
    return sorted(seen, key=lambda s: (s.beat.started_at, s.beat.pid))


class Heartbeat:
    """Writes one process's beat every `interval` seconds until stopped."""

    def __init__(
        self,
        redis: Redis,
        queue_name: str,
        owner: str,
        interval: float,
        *,
        main_pid: int,
        processes: int,
        load: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ) -> None:
        self.redis = redis
        self.key = worker_key(queue_name, owner)
        self.interval = interval
        # (in flight, handled), read at each beat.
        self.load = load
        now = time.time()
        self.beat = Beat(
            owner=owner,
            host=socket.gethostname(),
            pid=os.getpid(),
            main_pid=main_pid,
            processes=processes,
            started_at=now,
            heartbeat_at=now,
            ttl_ms=max(1, int(interval * TTL_INTERVALS * 1000)),
        )

    async def beat_once(self) -> None:
        in_flight, handled = self.load()
        self.beat = replace(
            self.beat, heartbeat_at=time.time(), in_flight=in_flight, handled=handled
        )
        await self.redis.set(self.key, self.beat.to_json(), px=self.beat.ttl_ms)

    async def run(self, stop: asyncio.Event) -> None:
        """Beat until `stop` is set; a failed beat is logged and the next one tried."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                break
            try:
                await self.beat_once()
            except Exception as exc:
                log.warning("heartbeat_failed", error=str(exc))

    async def clear(self) -> None:
        await self.redis.delete(self.key)
