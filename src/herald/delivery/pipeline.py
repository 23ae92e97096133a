"""One queue message through steps 3 to 5: claim, send, record.

Round trips per delivered task: one to claim and one to record, each shared with the
other deliveries of the process running at the same time (`coalesce.py`). With rate
limits on, the shared claim is BEGIN, the pick, one Redis script for the whole batch and
the claims with the COMMIT (`claim.py`); a claim that waits for its slot opens its send
gate before the send (one statement, shared); after the answer, one script (shared)
frees the chats, paused after a 429, beside the record. So a batch of n deliveries costs
four PostgreSQL and two Redis round trips with limits on, two PostgreSQL ones without
(plus one for the gates of those that wait).

With limits on, a message claims only once the bot-wide horizon has room (`_claim`):
it waits for a slot to free and picks the best task due then, so priorities hold under
a backlog. A retry or a deferral schedules its own hint for the moment the task is due
again. When the bot-wide limit binds, claims come back one at a time as sends finish
while the slots they reserve lie tens of milliseconds ahead: a claim then lingers a few
milliseconds for others (`CLAIM_LINGER_MAX`), the send gates of waiting claims open
together shortly before their slots (`GATE_LINGER`), and the records and chat releases
gather as long, so a broadcast at the bot's rate still works in batches.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from herald.config import CLAIM_PATIENCE_SECONDS, Settings
from herald.db.pool import Pool
from herald.delivery.claim import (
    GATE_MIN_WAIT,
    Claimed,
    ClaimResult,
    Deferred,
    Expired,
    Later,
    claim_limited,
    claim_many,
    open_gates,
)
from herald.delivery.classify import SendResult, Verdict, classify, delivered
from herald.delivery.coalesce import Coalescer
from herald.delivery.hints import Hints
from herald.delivery.policy import decide
from herald.delivery.ratelimit import RateLimiter
from herald.delivery.record import Outcome, Transition, record_many
from herald.metrics import (
    DELIVERY_LATENCY,
    RATE_LIMIT_DEFERRALS,
    RATE_LIMIT_WAIT,
    TASKS_FINISHED,
    TELEGRAM_ERRORS,
)
from herald.states import Actor, TaskStatus
from herald.telegram.sender import TelegramSender

log = structlog.get_logger(__name__)


# With the bot-wide limit binding, claims reserve slots up to the horizon ahead and come
# back one at a time as sends finish: a claim waits up to this long (never more than a
# quarter of the lead it has) for others to join its batch, so a broadcast at 1,000/s
# claims in batches of tens instead of ones. Without a lead, no claim waits.
CLAIM_LINGER_MAX = 0.02
# Without limits, the wait of a claim that arrives in company (`_busy_linger`).
BUSY_LINGER = 0.001
# Gates open in batches too: up to GATE_MIN_WAIT before the slot, gathering for this long.
GATE_LINGER = GATE_MIN_WAIT / 2


def worker_identity() -> str:
    """The lease owner and audit actor of this process: unique even across restarts."""
    return f"{Actor.WORKER}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Deliverer:
    settings: Settings
    pool: Pool
    sender: TelegramSender
    hints: Hints
    limiter: RateLimiter | None
    owner: str

    def __post_init__(self) -> None:
        # One claim batch at a time: the calls that come while one is on its way make the
        # next, so fewer, larger batches, each costing about the same (with limits, a
        # transaction of three round trips and a script; without, one statement, quick
        # enough that a short wait gathers them, `_busy_linger`).
        self._claims: Coalescer[None, ClaimResult] = Coalescer(
            self._claim_batch,
            in_flight=1,
            linger=self._busy_linger if self.limiter is None else self._claim_linger,
        )
        self._last_claims = 0  # the size of the last claim batch
        bound = None if self.limiter is None else self._linger_when_bound
        self._records: Coalescer[Outcome, str | None] = Coalescer(self._record_batch, linger=bound)
        self._gates: Coalescer[tuple[int, int], bool] = Coalescer(
            self._open_gates_batch, linger=lambda: GATE_LINGER
        )
        self._releases: Coalescer[tuple[str, float | None], None] = Coalescer(
            self._release_batch, linger=bound
        )
        self._said_partly_parsed = False
        self._last_turn = 0.0  # the last turn given to a message waiting for the horizon

    async def _claim_batch(self, requests: list[None]) -> list[ClaimResult]:
        self._last_claims = len(requests)
        lease = self.settings.lease_seconds
        if self.limiter is None:
            claimed: list[ClaimResult] = list(
                await claim_many(self.pool, self.owner, lease, len(requests))
            )
            return claimed + [None] * (len(requests) - len(claimed))
        # Only as many as the bot can send within the horizon; the others look again when
        # a slot frees, one slot apart, and then pick the best task due at that moment.
        await self.limiter.look()
        admitted = self.limiter.admit(len(requests))
        results: list[ClaimResult] = []
        if admitted:
            try:
                results = await claim_limited(self.pool, self.limiter, self.owner, lease, admitted)
            finally:
                self.limiter.unused(admitted - len(results))
        results += [None] * (admitted - len(results))
        results += [Later(self.limiter.later(0))] * (len(requests) - admitted)
        return [Later(self._turn(r.wait)) if isinstance(r, Later) else r for r in results]

    def _busy_linger(self) -> float:
        """Without limits a claim is one quick statement: under load, few calls would
        gather behind it. Once claims come in company (the last batch held more than
        one), a millisecond gathers a batch; one at a time (a steady trickle) none waits."""
        return BUSY_LINGER if self._last_claims > 1 else 0.0

    def _claim_linger(self) -> float:
        assert self.limiter is not None
        ahead = self.limiter.booked_ahead()
        return min(CLAIM_LINGER_MAX, ahead / 4) if ahead > CLAIM_LINGER_MAX else 0.0

    def _linger_when_bound(self) -> float:
        """Records and chat releases, while the bot-wide limit binds: the sends finish one
        interval apart, so a few milliseconds gather them into one statement and one
        script. At a lower rate they go at once (what the POST-to-delivered latency sees)."""
        assert self.limiter is not None
        return GATE_LINGER if self.limiter.booked_ahead() > CLAIM_LINGER_MAX else 0.0

    def _turn(self, wait: float) -> float:
        """The messages waiting for room on the bot's horizon come back in line, one
        bot-wide interval apart, each no sooner than `wait`: at most a few looks per slot
        that frees, however many wait."""
        assert self.limiter is not None
        now = asyncio.get_running_loop().time()
        turn = max(now + wait, self._last_turn + self.limiter.global_interval)
        self._last_turn = turn
        return turn - now

    async def _release_batch(self, answers: list[tuple[str, float | None]]) -> list[None]:
        assert self.limiter is not None
        await self.limiter.release_many(answers)
        return [None] * len(answers)

    async def _open_gates_batch(self, claims: list[tuple[int, int]]) -> list[bool]:
        return await open_gates(self.pool, self.owner, claims)

    async def _record_batch(self, outcomes: list[Outcome]) -> list[str | None]:
        return await record_many(self.pool, self.owner, outcomes)

    async def handle(self, hinted_id: int) -> TaskStatus | None:
        """Process one hint; the status the claimed task ended in, None if none was claimed."""
        result = await self._claim(hinted_id)
        if result is None:
            log.debug("nothing_due", hinted_id=hinted_id)
            return None
        if isinstance(result, Deferred):
            RATE_LIMIT_DEFERRALS.labels(scope=result.scope).inc()
            self.hints.push_later(result.id, None, result.wait)
            return TaskStatus.PENDING
        structlog.contextvars.bind_contextvars(task_id=result.id)
        if isinstance(result, Expired):
            TASKS_FINISHED.labels(outcome="expired").inc()
            log.info("task_expired", task_id=result.id)
            return TaskStatus.FAILED
        return await self._send_and_record(result)

    async def _claim(self, hinted_id: int) -> Claimed | Expired | Deferred | None:
        """The best due task, once the bot-wide horizon has room for it. A message waits
        for room at most `CLAIM_PATIENCE_SECONDS`, then its hint goes back to the queue:
        a process takes no new claim later than that after it stopped fetching messages
        (`wait_tasks_timeout` counts it)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + CLAIM_PATIENCE_SECONDS
        while True:
            result = await self._claims.submit(None)
            if not isinstance(result, Later):
                return result
            if loop.time() + result.wait > give_up:
                self.hints.push_later(hinted_id, None, result.wait)
                return None
            await asyncio.sleep(result.wait)

    async def _send_and_record(self, task: Claimed) -> TaskStatus:
        if task.correlation_id:
            structlog.contextvars.bind_contextvars(correlation_id=task.correlation_id)
        if self.limiter is not None:
            RATE_LIMIT_WAIT.observe(task.wait)
        if task.gated:
            # The gate opens in the last GATE_MIN_WAIT before the slot, the window a claim
            # without a gate has anyway, in a batch with the gates due about then.
            loop = asyncio.get_running_loop()
            slot = loop.time() + task.wait
            await asyncio.sleep(task.wait - GATE_MIN_WAIT)
            if not await self._open_gate(task):
                # Not sent; the sweeper has returned the task to pending, or will. (Only a
                # rate-limited claim has a gate, so there is a chat hold to release.)
                await self._release(task.chat_id, None)
                return TaskStatus.PENDING
            await asyncio.sleep(slot - loop.time())
        elif task.wait > 0:
            await asyncio.sleep(task.wait)  # the reserved rate-limit slot
        try:
            result = delivered(await self.sender.send(task.chat_id, task.content))
        except asyncio.CancelledError:
            # Stopped mid-send: the request may have been written. Record that much.
            result = SendResult(Verdict.AMBIGUOUS, "cancelled", "cancelled during the send")
            await asyncio.shield(self._finish(task, result))
            raise
        except Exception as exc:
            result = classify(exc, (self.settings.bot_token,))
        return await self._finish(task, result)

    async def _open_gate(self, task: Claimed) -> bool:
        """May this claim send now? Not if the sweeper took the task back while it waited
        for its slot, nor if PostgreSQL cannot say (then its lease runs out and the
        sweeper returns it to pending, the gate still closed)."""
        try:
            if await self._gates.submit((task.id, task.attempt)):
                return True
            log.warning("send_gate_closed", task_id=task.id, attempt=task.attempt)
        except Exception:
            log.exception("send_gate_failed", task_id=task.id, attempt=task.attempt)
        return False

    async def _finish(self, task: Claimed, result: SendResult) -> TaskStatus:
        if result.verdict is not Verdict.DELIVERED:
            TELEGRAM_ERRORS.labels(code=result.code).inc()
        if result.partly_parsed and not self._said_partly_parsed:
            # Once per process: every answer will be like this until aiogram catches up.
            self._said_partly_parsed = True
            log.warning("telegram_answer_partly_parsed", verdict=result.verdict, code=result.code)
        transition = decide(task, result, self.settings)
        record = self._records.submit((task.id, task.attempt, transition))
        if self.limiter is None:
            replaced = await record
        else:
            # The chat's release and the record go out together: neither waits for the other.
            release = self._releases.submit((task.chat_id, result.retry_after))
            try:
                replaced = await record
            finally:
                await self._released(release, task.chat_id)
        self._observe(task, transition, replaced)
        if replaced is not None and transition.retry_in is not None:
            self.hints.push_later(task.id, task.correlation_id, transition.retry_in)
        return transition.status

    async def _release(self, chat_id: str, retry_after: float | None) -> None:
        """Free the chat for its next send, paused after a 429."""
        await self._released(self._releases.submit((chat_id, retry_after)), chat_id)

    @staticmethod
    async def _released(release: asyncio.Future[None], chat_id: str) -> None:
        """A release never stands in the way of the record: if Redis fails here, the
        chat's hold simply runs out on its own."""
        try:
            await release
        except Exception:
            log.exception("rate_limit_release_failed", chat_id=chat_id)

    def _observe(self, task: Claimed, transition: Transition, replaced: str | None) -> None:
        if replaced is None:
            log.warning(
                "record_fenced", task_id=task.id, attempt=task.attempt, status=transition.status
            )
            return
        TASKS_FINISHED.labels(outcome=transition.status.value).inc()
        if transition.status is TaskStatus.DELIVERED:
            DELIVERY_LATENCY.observe((datetime.now(UTC) - task.due_since).total_seconds())
        # Per-task success logs at debug: at 1,000 deliveries/s they cost real CPU.
        level = log.debug if transition.status is TaskStatus.DELIVERED else log.info
        level(
            "task_recorded",
            task_id=task.id,
            attempt=task.attempt,
            failed=transition.failed,
            status=transition.status,
            reason=transition.reason,
            error=transition.error,
        )
