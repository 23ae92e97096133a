"""The loop in each worker process that sends status callbacks.

Apart from the Telegram deliveries by construction: its own asyncio task, its own few
database connections, its own HTTP connections (at most `HERALD_CALLBACK_CONCURRENCY`),
so a slow or dead endpoint fills only its own slots. Each attempt: claim (`outbox.claim`,
a batch as large as the free slots), POST the event's JSON signed per Standard Webhooks,
a 2xx within `HERALD_CALLBACK_TIMEOUT_SECONDS` is a success, anything else (another
status, a timeout, a refused or dropped connection) a failure retried on
`HERALD_CALLBACK_RETRY_SCHEDULE`; then the fenced record, shared by the attempts that
finished meanwhile. A process killed mid-attempt leaves the event claimed until its
lease ends; another worker sends it again then, with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import structlog

from herald.callbacks import outbox
from herald.callbacks.events import CallbackStatus
from herald.callbacks.signing import headers
from herald.config import Settings
from herald.db.pool import Pool
from herald.delivery.coalesce import Coalescer
from herald.metrics import (
    CALLBACK_ENDPOINTS_PAUSED,
    CALLBACKS_FAILED,
    CALLBACKS_RETRIED,
    CALLBACKS_SENT,
)

log = structlog.get_logger(__name__)

# An endpoint's answer is read only this far: its body is never used.
_MAX_ERROR_CHARS = 200


class CallbackSender:
    def __init__(self, pool: Pool, settings: Settings, owner: str) -> None:
        self.pool = pool
        self.settings = settings
        self.owner = owner
        # One record statement at a time: the attempts that finish meanwhile wait and go
        # together in the next (larger batches, fewer round trips per event).
        self._records: Coalescer[outbox.Attempt, int] = Coalescer(
            self._record_batch, max_batch=256, in_flight=1
        )
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        # The last claim found fewer due events than free slots: a finished attempt wakes
        # the loop at once (its task's next event may be due now). While busy, the loop
        # waits for half the slots to free, so that each claim takes a batch.
        self._caught_up = True

    def _finished(self) -> None:
        free = self.settings.callback_concurrency - len(self._in_flight)
        if self._caught_up or free >= max(1, self.settings.callback_concurrency // 2):
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until `stop` is set; then let the attempts in flight finish and
        record (each is bounded by the timeout)."""
        s = self.settings
        connector = aiohttp.TCPConnector(limit=s.callback_concurrency)
        timeout = aiohttp.ClientTimeout(total=s.callback_timeout_seconds)
        in_flight = self._in_flight
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self._session = session
            stopping = asyncio.create_task(stop.wait())
            try:
                while not stop.is_set():
                    self._wake.clear()  # before the claim: a wake-up during it counts
                    free = s.callback_concurrency - len(in_flight)
                    claimed: list[outbox.ClaimedEvent] = []
                    if free > 0:
                        try:
                            claimed = await outbox.claim(
                                self.pool, self.owner, s.callback_lease_seconds, free
                            )
                        except Exception as exc:
                            log.warning("callback_claim_failed", error=type(exc).__name__)
                    self._caught_up = len(claimed) < free
                    for event in claimed:
                        task = asyncio.create_task(self._attempt(event))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                    # Wait for free slots (`_finished`), the poll interval, or the stop.
                    waker = asyncio.create_task(self._wake.wait())
                    await asyncio.wait(
                        [stopping, waker],
                        timeout=s.callback_poll_seconds,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    waker.cancel()
            finally:
                stopping.cancel()
                if in_flight:
                    await asyncio.gather(*in_flight, return_exceptions=True)
                self._session = None

    async def _attempt(self, event: outbox.ClaimedEvent) -> None:
        assert self._session is not None
        s = self.settings
        msg_id = event.webhook_id
        status_code: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            signed = headers(event.secrets, msg_id, int(time.time()), event.body)
            async with self._session.post(event.url, data=event.body, headers=signed) as resp:
                status_code = resp.status
                if not 200 <= resp.status < 300:
                    error = f"HTTP {resp.status}"
                await resp.read()
        except TimeoutError:
            error = f"no answer within {s.callback_timeout_seconds:g} s"
        except aiohttp.ClientError as exc:
            # The class and aiohttp's text: the URL's host, never a secret (none is in it).
            error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
        except Exception as exc:  # a URL aiohttp cannot use, ...
            error = type(exc).__name__
        latency_ms = (time.monotonic() - started) * 1000
        ok = error is None
        status, retry_in = outbox.next_step(s.callback_retry_schedule, event.attempt, ok)
        attempt = outbox.Attempt(
            event.id, event.client, event.attempt, status, retry_in, status_code, latency_ms, error
        )
        try:
            await self._records.submit(attempt)
        except Exception as exc:
            # Not recorded: the lease runs out and the event goes again (same webhook-id).
            log.warning("callback_record_failed", event_id=event.id, error=type(exc).__name__)
        else:
            counter = {
                CallbackStatus.DELIVERED: CALLBACKS_SENT,
                CallbackStatus.PENDING: CALLBACKS_RETRIED,
                CallbackStatus.FAILED: CALLBACKS_FAILED,
            }[status]
            counter.labels(client=event.client).inc()
            if status is not CallbackStatus.DELIVERED:
                log.info(
                    "callback_attempt_failed",
                    event_id=msg_id,
                    client=event.client,
                    attempt=event.attempt,
                    error=error,
                    next=status.value,
                    retry_in=retry_in,
                )
        finally:
            self._finished()

    async def _record_batch(self, attempts: list[outbox.Attempt]) -> list[int]:
        recorded = await outbox.record(
            self.pool, self.owner, self.settings.callback_pause_after_seconds, attempts
        )
        for client in recorded.paused:
            CALLBACK_ENDPOINTS_PAUSED.labels(client=client).inc()
            log.warning("callback_endpoint_paused", client=client)
        return [a.event_id for a in attempts]


async def run_sender(pool: Pool, settings: Settings, owner: str, stop: asyncio.Event) -> None:
    """The sender until `stop`; its errors are logged, and it starts over."""
    while not stop.is_set():
        try:
            await CallbackSender(pool, settings, owner).run(stop)
        except Exception:
            log.exception("callback_sender_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.callback_poll_seconds)
