"""Store one update and act on it, once: shared by the webhook and the poller.

An update that means nothing to Herald (a reply, any other message) is one statement,
the insert, which also writes its `message.received` events for the clients that take
their recipients' updates (herald.db.updates). One that does (herald.updates.read) is
one transaction: the insert, and only when it stored a new row, the effect and the
events it causes, so an update delivered twice acts once and is reported once:

- `/start <code>`: unblock the chat, spend the code, bind its recipient to the chat
  (`recipient.linked`), resubscribe the chat's other recipients (`recipient.subscribed`
  for those it changed), and insert the welcome task under the idempotency key
  `welcome:<code>` (the same key twice can only ever make one task);
- `/start`: unblock the chat, resubscribe its recipients (`recipient.subscribed`);
  `/stop`: unsubscribe them (`recipient.unsubscribed`);
- `my_chat_member`: block or unblock the chat (`recipient.blocked`, `.unblocked` for
  every recipient bound to it, when the bot's status crossed between gone and back);
- `migrate_to_chat_id`: remember the supergroup, move the group's pending tasks there.

The poller also advances its offset in that transaction (`advance_to`). The ids of new
tasks due now come back: the caller pushes them to the queue after the commit (the
sweeper covers a caller that dies first).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import structlog

from herald.callbacks.events import BLOCKED, LINKED, SUBSCRIBED, UNBLOCKED, UNSUBSCRIBED
from herald.db import recipients as chats
from herald.db.intake import NewTask, insert_task
from herald.db.pool import Executor, Pool
from herald.db.updates import advance_offset, store_update
from herald.states import CREATED, DeliveryMode
from herald.updates.read import Effect, Membership, Migrated, Start, Stop, Update

log = structlog.get_logger(__name__)

WELCOME_KEY_PREFIX = "welcome:"


class Taken(NamedTuple):
    stored: bool  # False: the update was stored before, nothing done now
    due: list[int]  # tasks made by it, due now: to push after the commit


async def take_update(
    pool: Pool,
    bot_id: int,
    update: Update,
    payload: str,
    *,
    max_attempts: int,
    advance_to: int | None = None,
) -> Taken:
    """Store `update` (`payload`: its JSON text) and apply its effect, once."""
    if update.effect is None and advance_to is None:
        # A reply or any other message: stored, listed by GET /api/updates, and forwarded
        # (message.received) in the same statement.
        stored = await _store(pool, bot_id, update, payload)
        return Taken(stored, [])
    async with pool.acquire() as conn, conn.transaction():
        stored = await _store(conn, bot_id, update, payload)
        due: list[int] = []
        if stored and update.effect is not None:
            due = await _apply(conn, bot_id, update.update_id, update.effect, max_attempts)
        if advance_to is not None:
            await advance_offset(conn, bot_id, advance_to)
    return Taken(stored, due)


async def _store(db: Executor, bot_id: int, update: Update, payload: str) -> bool:
    return await store_update(
        db,
        bot_id,
        update.update_id,
        update.kind,
        update.chat_id,
        payload,
        forward=update.forward,
        command=update.command,
    )


async def _apply(
    db: Executor, bot_id: int, update_id: int, effect: Effect, max_attempts: int
) -> list[int]:
    if isinstance(effect, Start):
        return await _start(db, bot_id, update_id, effect, max_attempts)
    if isinstance(effect, Stop):
        stopped = await chats.set_subscribed(db, bot_id, effect.chat_id, False)
        await chats.write_events(
            db, bot_id, update_id, effect.chat_id, UNSUBSCRIBED, recipients=stopped
        )
        log.info("chat_stopped", chat_id=effect.chat_id, unsubscribed=len(stopped))
    elif isinstance(effect, Membership):
        await chats.set_blocked(db, bot_id, effect.chat_id, effect.blocked, effect.status)
        if effect.changed:
            kind = BLOCKED if effect.blocked else UNBLOCKED
            data = {"status": effect.status}
            await chats.write_events(db, bot_id, update_id, effect.chat_id, kind, data)
        log.info("chat_membership", chat_id=effect.chat_id, status=effect.status)
    elif isinstance(effect, Migrated):
        moved = await chats.migrate_chat(db, bot_id, effect.chat_id, effect.to_chat_id)
        log.info("chat_migrated", chat_id=effect.chat_id, to=effect.to_chat_id, moved=moved)
    return []


async def _start(
    db: Executor, bot_id: int, update_id: int, start: Start, max_attempts: int
) -> list[int]:
    chat_id = start.chat_id
    await chats.set_blocked(db, bot_id, chat_id, False, None)
    # The link first: its recipient, bound and subscribed by it, hears `linked` only.
    link = None if start.code is None else await chats.use_link(db, bot_id, start.code, chat_id)
    resubscribed = await chats.set_subscribed(db, bot_id, chat_id, True)
    await chats.write_events(db, bot_id, update_id, chat_id, SUBSCRIBED, recipients=resubscribed)
    if start.code is None:
        log.info("chat_started", chat_id=chat_id, resubscribed=len(resubscribed))
        return []
    if link is None:
        log.info("link_refused", chat_id=chat_id)  # unknown, used or expired
        return []
    bound = chats.RecipientKey(link.client, link.external_id)
    await chats.write_events(db, bot_id, update_id, chat_id, LINKED, recipients=[bound])
    log.info("recipient_bound", client=link.client, chat_id=chat_id)
    return await _welcome(db, bot_id, start, link, max_attempts)


async def _welcome(
    db: Executor, bot_id: int, start: Start, link: chats.UsedLink, max_attempts: int
) -> list[int]:
    """The welcome message, a task like any other: the pipeline sends it exactly once."""
    assert start.code is not None
    key = WELCOME_KEY_PREFIX + start.code
    task = NewTask(
        idempotency_key=key,
        request_hash=hashlib.sha256(key.encode()).digest(),
        chat_id=start.chat_id,
        content={"text": link.welcome},
        metadata={"welcome": True},
        priority=0,
        delivery=DeliveryMode.EXACTLY_ONCE.value,
        send_at=None,
        expires_at=None,
        max_attempts=max_attempts,
        recipient=link.external_id,
    )
    created, stored = await insert_task(
        db, link.client, task, None, f"{CREATED.actor}:{link.client}", bot_id=bot_id
    )
    return [stored.id] if created and stored.enqueued_at is not None else []
