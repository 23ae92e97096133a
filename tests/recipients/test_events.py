"""A recipient's events, as the outbox holds them: which update writes which event for
which client, once, in the transaction that stores the update (herald.updates.take). The
sending, signatures and order end to end: test_forwarding.py."""

from __future__ import annotations

from typing import Any

import orjson

from herald.db import recipients as chats
from herald.db.pool import Pool
from herald.updates.read import read_update
from herald.updates.take import Taken, take_update
from tests.callbacks.conftest import add_endpoint

BOT = 123456
_ids = iter(range(100, 10_000))


def message(chat_id: int, text: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": next(_ids),
        "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"},
        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
        "date": 1764500000,
        **fields,
    }
    if text is not None:
        body["text"] = text
    return {"update_id": next(_ids), "message": body}


def membership(chat_id: int, old: str, new: str) -> dict[str, Any]:
    chat = {"id": chat_id, "type": "private"}
    return {
        "update_id": next(_ids),
        "my_chat_member": {
            "chat": chat,
            "date": 1764500000,
            "old_chat_member": {"status": old},
            "new_chat_member": {"status": new},
        },
    }


async def take(db: Pool, raw: dict[str, Any]) -> Taken:
    update = read_update(raw)
    assert update is not None
    return await take_update(db, BOT, update, orjson.dumps(raw).decode(), max_attempts=5)


async def bind(db: Pool, client: str, external_id: str, chat_id: int) -> None:
    code = f"code-{client}-{external_id}-{chat_id}"
    await chats.create_link(db, BOT, client, external_id, code, "hi", 3600)
    await take(db, message(chat_id, f"/start {code}"))


async def events(db: Pool, after: int = 0) -> list[tuple[str, str, str]]:
    """(client, recipient, type) of the recipients' events written after row `after`, in
    update order (then by client and recipient: one update's rows come in any order)."""
    rows = await db.fetch(
        "SELECT client, recipient, type FROM callback_events"
        " WHERE task_id IS NULL AND id > $1 ORDER BY seq, client, recipient",
        after,
    )
    return [(r["client"], r["recipient"], r["type"]) for r in rows]


async def last_id(db: Pool) -> int:
    value: int = await db.fetchval("SELECT coalesce(max(id), 0) FROM callback_events")
    return value


async def test_a_message_goes_to_each_recipient_of_a_client_that_takes_updates(db: Pool) -> None:
    await add_endpoint(db, "shop", updates=True)
    await add_endpoint(db, "quiet")  # an endpoint for its task events only
    for client, external_id in [("shop", "ann"), ("shop", "ann-2"), ("quiet", "a"), ("none", "b")]:
        await bind(db, client, external_id, 42)  # "none" has no endpoint at all
    await bind(db, "shop", "carl", 43)
    before = await last_id(db)

    raw = message(42, "/help@herald_bot where is it?", reply_to_message={"message_id": 7})
    assert (await take(db, raw)).stored
    assert await events(db, before) == [
        ("shop", "ann", "message.received"),
        ("shop", "ann-2", "message.received"),
    ]
    row = await db.fetchrow(
        "SELECT seq, payload FROM callback_events WHERE recipient = 'ann' AND id > $1", before
    )
    assert row is not None
    payload = row["payload"]
    assert payload["type"] == "message.received"
    assert payload["timestamp"]
    assert row["seq"] == raw["update_id"]
    assert payload["data"] == {
        "recipient": "ann",
        "chat_id": 42,
        "update_id": raw["update_id"],
        "seq": raw["update_id"],
        "message_id": raw["message"]["message_id"],
        "text": "/help@herald_bot where is it?",
        "reply_to_message_id": 7,
        "command": "/help",
        "message": raw["message"],
    }

    # The same update again (a webhook call retried, a poller's repeat): nothing more.
    assert not (await take(db, raw)).stored
    # A photo with a caption; not a reply, no command.
    photo = message(43, photo=[{"file_id": "f", "width": 1, "height": 1}], caption="look")
    # Not forwarded: a chat bound to nobody, an edit, a message of no chat.
    unbound = message(99, "who are you?")
    edited = {"update_id": next(_ids), "edited_message": message(42, "typo")["message"]}
    for update in (photo, unbound, edited):
        assert (await take(db, update)).stored
    assert await events(db, before) == [
        ("shop", "ann", "message.received"),
        ("shop", "ann-2", "message.received"),
        ("shop", "carl", "message.received"),
    ]
    data = await db.fetchval(
        "SELECT payload->'data' FROM callback_events WHERE recipient = 'carl' AND id > $1",
        before,
    )
    assert (data["text"], data["reply_to_message_id"], data["command"]) == ("look", None, None)
    assert await db.fetchval("SELECT count(*) FROM telegram_updates WHERE chat_id = '99'") == 1


async def test_start_stop_and_membership_events(db: Pool) -> None:
    await add_endpoint(db, "shop", updates=True)
    await add_endpoint(db, "quiet")
    await bind(db, "quiet", "q", 42)
    assert await events(db) == []
    await bind(db, "shop", "ann", 42)
    assert await events(db) == [("shop", "ann", "recipient.linked")]

    steps: list[tuple[dict[str, Any], list[str]]] = [
        (message(42, "/stop"), ["recipient.unsubscribed"]),
        (message(42, "/stop"), []),  # already stopped: nothing changed
        (message(42, "/start"), ["recipient.subscribed"]),
        (message(42, "/start"), []),
        (membership(42, "member", "kicked"), ["recipient.blocked"]),
        (membership(42, "kicked", "member"), ["recipient.unblocked"]),
        (membership(42, "member", "administrator"), []),  # still there
        (message(42, "/stop"), ["recipient.unsubscribed"]),
    ]
    for raw, expected in steps:
        before = await last_id(db)
        await take(db, raw)
        assert await events(db, before) == [("shop", "ann", t) for t in expected], raw

    # A new link used in a stopped chat: the linked recipient hears only `linked`, the
    # chat's other recipient hears that /start resubscribed it.
    before = await last_id(db)
    await bind(db, "shop", "bob", 42)
    assert await events(db, before) == [
        ("shop", "ann", "recipient.subscribed"),
        ("shop", "bob", "recipient.linked"),
    ]
    rows = await db.fetch(
        "SELECT type, payload->'data' AS data FROM callback_events"
        " WHERE recipient = 'ann' ORDER BY seq"
    )
    blocked = next(r["data"] for r in rows if r["type"] == "recipient.blocked")
    assert blocked["status"] == "kicked"
    assert blocked["chat_id"] == 42
    assert {"recipient", "update_id", "seq"} <= blocked.keys()
    seqs = await db.fetch("SELECT seq FROM callback_events WHERE recipient = 'ann' ORDER BY id")
    assert [r["seq"] for r in seqs] == sorted(r["seq"] for r in seqs)  # update order
