"""Where a client's status callbacks go: the `callback_endpoints` rows and their audit.

Two sources. HERALD_CALLBACKS is written into the table by every gateway and worker
process at its start (`sync_configured`), so every process of a deployment must have the
same value; a client configured there is managed there (PUT answers 409 for it), and
one removed from it loses its endpoint, its waiting events failed (audited). PUT
/api/callbacks sets the others (`put`). The outbox trigger writes events only for the
clients with a row, and recipients' events only for those whose row says `updates`; the
senders read the URL and secrets from it at each attempt, so a new URL or secret
applies to the events still waiting.

A secret is shown once, in the answer to the PUT that made it, and is never written to
a log, an error, a metric, the audit trail or a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from herald.callbacks.events import CallbackStatus
from herald.callbacks.signing import new_secret
from herald.config import Settings
from herald.db.pool import Executor, Pool
from herald.db.sql import literal, literals

ENV, API = "env", "api"
_OPEN = literals((CallbackStatus.PENDING, CallbackStatus.SENDING))


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def url_allowed(url: str, hosts: Sequence[str]) -> bool:
    """Whether a task's callback_url names one of its endpoint's hosts (http or https)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and host_of(url) in {h.lower() for h in hosts}


_UPSERT_ENV = """
INSERT INTO callback_endpoints (client, url, hosts, secret, previous_secret, updates, source)
VALUES ($1, $2, $3, $4, $5, $6, 'env')
ON CONFLICT (client) DO UPDATE SET
    url = EXCLUDED.url, hosts = EXCLUDED.hosts, secret = EXCLUDED.secret,
    previous_secret = EXCLUDED.previous_secret, previous_until = NULL,
    updates = EXCLUDED.updates, source = 'env', updated_at = now()
WHERE (callback_endpoints.url, callback_endpoints.hosts, callback_endpoints.secret,
       callback_endpoints.previous_secret, callback_endpoints.updates,
       callback_endpoints.source)
      IS DISTINCT FROM (EXCLUDED.url, EXCLUDED.hosts, EXCLUDED.secret,
                        EXCLUDED.previous_secret, EXCLUDED.updates, 'env')
"""
# A client no longer in HERALD_CALLBACKS loses its endpoint. Its events still waiting
# could never go out (the senders read the URL and secret from the endpoint), and an
# open event keeps its task from retention: they fail at once, said in the audit trail.
_DROP_ENV = f"""
WITH dropped AS (
    DELETE FROM callback_endpoints WHERE source = 'env' AND NOT client = ANY($1::text[])
    RETURNING client
), abandoned AS (
    UPDATE callback_events e SET
        status = {literal(CallbackStatus.FAILED)}, lease_owner = NULL, finished_at = now()
    FROM dropped d
    WHERE e.client = d.client AND e.status IN ({_OPEN})
    RETURNING e.client
)
INSERT INTO callback_audit (client, actor, action, details)
SELECT d.client, 'config', 'removed',
       jsonb_build_object('reason', 'no longer in HERALD_CALLBACKS',
                          'events_failed', (SELECT count(*) FROM abandoned a
                                            WHERE a.client = d.client))
FROM dropped d
"""


async def sync_configured(pool: Pool, settings: Settings) -> None:
    """Write HERALD_CALLBACKS into the table, and drop the clients it no longer names.
    Run by each process at its start: a few statements, one per client."""
    async with pool.acquire() as conn, conn.transaction():
        for client, e in sorted(settings.callbacks.items()):
            hosts = e.hosts or [host_of(e.url)]
            await conn.execute(
                _UPSERT_ENV, client, e.url, hosts, e.secret, e.previous_secret, e.updates
            )
        await conn.execute(_DROP_ENV, sorted(settings.callbacks))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint as the API shows it: never its secrets."""

    client: str
    url: str
    hosts: list[str]
    source: str
    updates: bool  # its recipients' events too (message.received, recipient.*)
    rotating_until: datetime | None  # a previous secret still signs until then
    paused_at: datetime | None
    failing_since: datetime | None
    updated_at: datetime

    def view(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "url": self.url,
            "hosts": self.hosts,
            "source": self.source,
            "updates": self.updates,
            "previous_secret_until": self.rotating_until,
            "paused_at": self.paused_at,
            "failing_since": self.failing_since,
            "updated_at": self.updated_at,
        }


_ENDPOINT_COLUMNS = (
    "client, url, hosts, source, updates, CASE WHEN previous_secret IS NOT NULL THEN"
    " coalesce(previous_until, 'infinity') END AS rotating_until, paused_at, failing_since,"
    " updated_at"
)


def _endpoint(row: Any) -> Endpoint:
    until = row["rotating_until"]
    return Endpoint(
        client=row["client"],
        url=row["url"],
        hosts=list(row["hosts"]),
        source=row["source"],
        updates=row["updates"],
        rotating_until=None if until is None or until == datetime.max else until,
        paused_at=row["paused_at"],
        failing_since=row["failing_since"],
        updated_at=row["updated_at"],
    )


async def get(pool: Executor, client: str) -> Endpoint | None:
    row = await pool.fetchrow(
        f"SELECT {_ENDPOINT_COLUMNS} FROM callback_endpoints WHERE client = $1", client
    )
    return None if row is None else _endpoint(row)


async def hosts_of(pool: Executor, client: str) -> list[str] | None:
    """The hosts a task of `client` may name in its callback_url; None: no endpoint."""
    hosts = await pool.fetchval("SELECT hosts FROM callback_endpoints WHERE client = $1", client)
    return None if hosts is None else list(hosts)


class ManagedByEnvironment(Exception):
    """PUT for a client that HERALD_CALLBACKS configures: the route answers 409."""


class NoEndpoint(Exception):
    """Resume or rotate for a client without an endpoint: the route answers 404."""


@dataclass(frozen=True, slots=True)
class PutResult:
    endpoint: Endpoint
    secret: str | None  # shown once: set when this request made a new one


_LOCK = "SELECT source FROM callback_endpoints WHERE client = $1 FOR UPDATE"
_INSERT = f"""
INSERT INTO callback_endpoints (client, url, hosts, secret, updates, source)
VALUES ($1, $2, $3, $4, $5, 'api')
RETURNING {_ENDPOINT_COLUMNS}
"""
_UPDATE = f"""
UPDATE callback_endpoints SET
    url = $2,
    hosts = $3,
    updates = $6,
    previous_secret = CASE WHEN $4::text IS NULL THEN previous_secret ELSE secret END,
    previous_until = CASE WHEN $4::text IS NULL THEN previous_until
                     ELSE now() + make_interval(secs => $5) END,
    secret = coalesce($4, secret),
    updated_at = now()
WHERE client = $1
RETURNING {_ENDPOINT_COLUMNS}
"""
_AUDIT = "INSERT INTO callback_audit (client, actor, action, details) VALUES ($1, $2, $3, $4)"


async def put(
    pool: Pool,
    client: str,
    url: str,
    hosts: Sequence[str] | None,
    *,
    rotate: bool,
    grace_seconds: float,
    actor: str,
    updates: bool = False,
) -> PutResult:
    """Set `client`'s endpoint: a new one gets a secret; `rotate` makes a new secret and
    keeps the old one signing for `grace_seconds`; `updates` says whether its recipients'
    events go there too. One transaction with its audit row."""
    host_list = list(hosts) if hosts else [host_of(url)]
    async with pool.acquire() as conn, conn.transaction():
        source = await conn.fetchval(_LOCK, client)
        if source == ENV:
            raise ManagedByEnvironment(client)
        secret: str | None
        if source is None:
            secret = new_secret()
            row = await conn.fetchrow(_INSERT, client, url, host_list, secret, updates)
            action = "created"
        else:
            secret = new_secret() if rotate else None
            row = await conn.fetchrow(
                _UPDATE, client, url, host_list, secret, grace_seconds, updates
            )
            action = "rotated" if rotate else "updated"
        assert row is not None
        details: dict[str, Any] = {"url": url, "hosts": host_list, "updates": updates}
        if rotate and source is not None:
            details["grace_seconds"] = grace_seconds
        await conn.execute(_AUDIT, client, actor, action, details)
        return PutResult(_endpoint(row), secret)


_RESUME = f"""
WITH resumed AS (
    UPDATE callback_endpoints SET paused_at = NULL, failing_since = NULL, updated_at = now()
    WHERE client = $1
    RETURNING {_ENDPOINT_COLUMNS}
), due AS (
    UPDATE callback_events SET next_attempt_at = now()
    WHERE client = $1 AND status IN ({_OPEN}) AND lease_owner IS NULL
      AND EXISTS (SELECT 1 FROM resumed)
), audit AS (
    INSERT INTO callback_audit (client, actor, action)
    SELECT client, $2, 'resumed' FROM resumed
)
SELECT * FROM resumed
"""


async def resume(pool: Executor, client: str, actor: str) -> Endpoint:
    """Unpause `client`'s endpoint; its waiting events are due at once."""
    row = await pool.fetchrow(_RESUME, client, actor)
    if row is None:
        raise NoEndpoint(client)
    return _endpoint(row)


@dataclass(frozen=True, slots=True)
class AttemptView:
    at: datetime
    attempt: int
    status_code: int | None
    latency_ms: float
    error: str | None


@dataclass(frozen=True, slots=True)
class EventView:
    id: str  # the webhook-id
    seq: int
    type: str
    status: str
    attempts: list[AttemptView]
    created_at: datetime
    finished_at: datetime | None
    next_attempt_at: datetime | None
    payload: dict[str, Any]


_EVENTS = """
SELECT e.id, e.task_id, e.seq, e.type, e.status, e.created_at, e.finished_at,
       e.next_attempt_at, e.payload,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'at', a.at, 'attempt', a.attempt, 'status_code', a.status_code,
                    'latency_ms', a.latency_ms, 'error', a.error) ORDER BY a.id)
                 FROM callback_attempts a WHERE a.event_id = e.id), '[]') AS attempts
FROM callback_events e WHERE {stream}
"""
_TASK_EVENTS = _EVENTS.format(stream="e.task_id = $1") + "ORDER BY e.seq"
# A recipient's latest $3, oldest first (its history can be long; a task's is short).
_RECIPIENT_STREAM = "e.client = $1 AND e.recipient = $2 AND e.task_id IS NULL"
_RECIPIENT_EVENTS = f"""
SELECT * FROM ({_EVENTS.format(stream=_RECIPIENT_STREAM)} ORDER BY e.seq DESC LIMIT $3) latest
ORDER BY seq
"""


async def task_events(pool: Executor, task_id: int) -> list[EventView]:
    """A task's events, in order, each with its attempts (GET /api/tasks/{id}/callbacks)."""
    return [_event_view(r) for r in await pool.fetch(_TASK_EVENTS, task_id)]


async def recipient_events(
    pool: Executor, client: str, external_id: str, limit: int
) -> list[EventView]:
    """The latest `limit` events of `client`'s recipient, in order, with their attempts
    (GET /api/recipients/{external_id}/events)."""
    rows = await pool.fetch(_RECIPIENT_EVENTS, client, external_id, limit)
    return [_event_view(r) for r in rows]


def _event_view(r: Any) -> EventView:
    from herald.callbacks.signing import message_id, update_message_id

    task_id = r["task_id"]
    return EventView(
        id=message_id(task_id, r["seq"]) if task_id else update_message_id(r["seq"], r["id"]),
        seq=r["seq"],
        type=r["type"],
        status=r["status"],
        attempts=[
            AttemptView(
                at=datetime.fromisoformat(a["at"]),
                attempt=a["attempt"],
                status_code=a["status_code"],
                latency_ms=a["latency_ms"],
                error=a["error"],
            )
            for a in r["attempts"]
        ],
        created_at=r["created_at"],
        finished_at=r["finished_at"],
        next_attempt_at=r["next_attempt_at"] if r["status"] == CallbackStatus.PENDING else None,
        payload=r["payload"],
    )


@dataclass(frozen=True, slots=True)
class ClientBacklog:
    client: str
    oldest_seconds: float  # age of its oldest undelivered event (0: none)
    waiting: int
    failing_since: datetime | None  # every attempt has failed since
    paused_at: datetime | None
    updates: bool  # takes its recipients' events too

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


_BACKLOG = f"""
SELECT p.client, p.paused_at, p.failing_since, p.updates,
       coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM callback_events e
                WHERE e.client = p.client AND e.status IN ({_OPEN}))), 0)::float8 AS oldest,
       (SELECT count(*) FROM callback_events e
        WHERE e.client = p.client AND e.status IN ({_OPEN})) AS waiting
FROM callback_endpoints p ORDER BY p.client
"""


async def backlog(pool: Executor) -> list[ClientBacklog]:
    """Per endpoint: its oldest undelivered event's age, events waiting, failing, paused
    (the gateway's gauges and `herald status`)."""
    rows = await pool.fetch(_BACKLOG)
    return [
        ClientBacklog(
            r["client"], r["oldest"], r["waiting"], r["failing_since"], r["paused_at"], r["updates"]
        )
        for r in rows
    ]
