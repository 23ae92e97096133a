"""Replies and commands forwarded end to end: people act in the emulator, Telegram's
updates reach the gateway's webhook, a `herald worker` process sends the events to a
real HTTP receiver, and every request is verified with the `standardwebhooks` package."""

from __future__ import annotations

from herald.api.auth import mint_token
from herald.updates.webhook import WEBHOOK_PATH
from tests.callbacks.conftest import (
    FAST_CALLBACKS,
    Received,
    Receiver,
    callbacks_env,
    make_secret,
)
from tests.delivery.conftest import StartWorker
from tests.recipients.conftest import BOT_ID, SECRET, Herald, eventually


def _as(herald: Herald, client: str, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(herald.settings, client, list(scopes))}"}


async def _bind(herald: Herald, client: str, external_id: str, user_id: int) -> None:
    """Link `client`'s recipient and take the person through Start, welcome delivered."""
    made = await herald.client.post(
        f"/api/recipients/{external_id}/link", headers=_as(herald, client, "tasks:write")
    )
    assert made.status_code == 201, made.text
    herald.tg.user_start(user_id, made.json()["code"], bot_id=BOT_ID)

    async def bound() -> bool:
        r = await herald.client.get(
            f"/api/recipients/{external_id}", headers=_as(herald, client, "tasks:write")
        )
        return r.status_code == 200

    await eventually(bound)


def _of(received: list[Received], recipient: str) -> list[Received]:
    return [r for r in received if r.event["data"].get("recipient") == recipient]


def _recipients(received: list[Received]) -> list[Received]:
    """A recipient's events, without the task events the same endpoints get."""
    return [r for r in received if not r.event["type"].startswith("task.")]


def _types(received: list[Received]) -> list[str]:
    return [r.event["type"] for r in received]


async def test_messages_and_replies_reach_the_client_that_asked(
    herald: Herald, receiver: Receiver, start_worker: StartWorker
) -> None:
    await start_worker(**FAST_CALLBACKS)
    await herald.set_webhook()
    operator = _as(herald, "ops", "tasks:manage")
    put = await herald.client.put(
        "/api/callbacks",
        json={"client": "shop", "url": receiver.url("/shop"), "updates": True},
        headers=operator,
    )
    assert put.status_code == 200, put.text
    secret = put.json()["secret"]
    # Another producer with an endpoint for its task events only.
    put = await herald.client.put(
        "/api/callbacks", json={"client": "other", "url": receiver.url("/other")}, headers=operator
    )
    assert put.status_code == 200, put.text
    for client, asked in (("shop", True), ("other", False)):
        shown = await herald.client.get(f"/api/callbacks/{client}", headers=operator)
        assert shown.json()["updates"] is asked

    ann, stranger = 7101, 7102
    await _bind(herald, "shop", "ann", ann)
    await _bind(herald, "other", "ann-at-other", ann)  # the same person, another producer
    await herald.deliver()  # the welcomes
    welcome = herald.tg.messages(ann)[0]

    herald.tg.user_send(ann, "Where is my order?", bot_id=BOT_ID)
    reply = herald.tg.user_send(ann, "Thanks!", bot_id=BOT_ID, reply_to=welcome["message_id"])
    herald.tg.user_send(ann, "/help@herald_emulator_123456_bot now", bot_id=BOT_ID)
    herald.tg.user_send(stranger, "hello?", bot_id=BOT_ID)  # bound to nobody

    # Beside them, each producer's endpoint hears of its welcome task (task.delivered).
    await receiver.wait(lambda: len(_recipients(receiver.accepted)) == 4)
    got = _recipients(receiver.accepted)
    assert _types(got) == ["recipient.linked"] + ["message.received"] * 3
    events = [r.verify(secret) for r in got]  # signed with shop's secret, all of them
    assert all(r.path == "/shop" for r in got)
    seqs = [e["data"]["seq"] for e in events]
    assert seqs == sorted(seqs)  # in update order
    assert len({r.id for r in got}) == 4
    assert all(r.id == f"msg_u{e['data']['update_id']}_{r.id.rsplit('_', 1)[1]}"
               for r, e in zip(got, events, strict=True))  # fmt: skip

    asked, thanked, helped = (e["data"] for e in events[1:])
    assert asked["recipient"] == "ann"
    assert asked["chat_id"] == ann
    assert asked["text"] == "Where is my order?"
    assert (asked["reply_to_message_id"], asked["command"]) == (None, None)
    assert thanked["update_id"] == reply["update_id"]
    assert thanked["message_id"] == reply["message"]["message_id"]
    assert thanked["reply_to_message_id"] == welcome["message_id"]
    assert thanked["message"] == reply["message"]  # Telegram's message, as it came
    assert helped["command"] == "/help"
    assert events[1]["timestamp"]

    # The stranger's message: stored and listed, forwarded to nobody.
    listed = await herald.client.get(
        "/api/updates",
        params={"chat_id": stranger},
        headers={"Authorization": f"Bearer {herald.tokens['reader']}"},
    )
    assert [i["update"]["message"]["text"] for i in listed.json()["items"]] == ["hello?"]

    # Telegram calls the webhook again with the same update (it missed the answer).
    again = await herald.client.post(
        WEBHOOK_PATH,
        json=reply,
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert again.status_code == 200, again.text
    # The event would have been written by that call's own statement: there is none, and
    # every event written was delivered, so nothing more can come.
    states = await herald.pool.fetch(
        "SELECT client, status FROM callback_events WHERE task_id IS NULL"
    )
    assert [(r["client"], r["status"]) for r in states] == [("shop", "delivered")] * 4
    await receiver.wait(lambda: any(r.path == "/other" for r in receiver.accepted))
    assert _types([r for r in receiver.requests if r.path == "/other"]) == ["task.delivered"]

    # The producer sees what it was sent about its recipient: the same ids, the attempts.
    shown = await herald.client.get(
        "/api/recipients/ann/events", headers=_as(herald, "shop", "tasks:write")
    )
    assert shown.status_code == 200, shown.text
    items = shown.json()["items"]
    assert [i["id"] for i in items] == [r.id for r in got]
    assert [i["type"] for i in items] == _types(got)
    assert {i["status"] for i in items} == {"delivered"}
    assert [[a["status_code"] for a in i["attempts"]] for i in items] == [[200]] * 4
    latest = await herald.client.get(
        "/api/recipients/ann/events",
        params={"limit": 2},
        headers=_as(herald, "shop", "tasks:write"),
    )
    assert [i["id"] for i in latest.json()["items"]] == [r.id for r in got[-2:]]
    # Another producer's recipients are not its to see.
    elsewhere = await herald.client.get(
        "/api/recipients/ann/events", headers=_as(herald, "other", "tasks:write")
    )
    assert elsewhere.json()["items"] == []


async def test_start_stop_block_and_unblock(
    herald: Herald, receiver: Receiver, start_worker: StartWorker
) -> None:
    secret = make_secret()
    await start_worker(
        callbacks=callbacks_env(receiver.url(), secret, updates=True), **FAST_CALLBACKS
    )
    await herald.set_webhook()
    user = 7201
    await _bind(herald, "shop", "bea", user)
    herald.tg.user_send(user, "/stop", bot_id=BOT_ID)
    herald.tg.user_start(user, bot_id=BOT_ID)
    herald.tg.user_block(user, bot_id=BOT_ID)
    herald.tg.user_unblock(user, bot_id=BOT_ID)

    await receiver.wait(lambda: len(_recipients(receiver.accepted)) == 5)
    got = _recipients(receiver.accepted)
    events = [r.verify(secret) for r in got]
    assert _types(got) == [
        "recipient.linked",
        "recipient.unsubscribed",
        "recipient.subscribed",
        "recipient.blocked",
        "recipient.unblocked",
    ]
    assert all(e["data"]["recipient"] == "bea" for e in events)
    assert all(e["data"]["chat_id"] == user for e in events)
    assert [e["data"]["update_id"] for e in events] == sorted(
        e["data"]["update_id"] for e in events
    )
    assert events[3]["data"]["status"] == "kicked"
    assert events[4]["data"]["status"] == "member"
    assert await herald.state("bea") == "active"


async def test_a_failing_receiver_gets_retries_in_order_without_holding_up_others(
    herald: Herald, receiver: Receiver, start_worker: StartWorker
) -> None:
    secret = make_secret()
    tries: dict[str, int] = {}
    failing = "first words"

    async def answer(got: Received) -> int | None:
        tries[got.id] = tries.get(got.id, 0) + 1
        if got.event["data"].get("text") == failing and tries[got.id] <= 2:
            return 500 if tries[got.id] == 1 else None  # then a dropped connection
        return 204

    receiver.answer = answer
    await start_worker(
        callbacks=callbacks_env(receiver.url(), secret, updates=True), **FAST_CALLBACKS
    )
    await herald.set_webhook()
    cid, dan = 7301, 7302
    await _bind(herald, "shop", "cid", cid)
    await _bind(herald, "shop", "dan", dan)
    await receiver.wait(lambda: len(_recipients(receiver.accepted)) == 2)  # the two links

    for text in (failing, "second", "third"):
        herald.tg.user_send(cid, text, bot_id=BOT_ID)
    herald.tg.user_send(dan, "meanwhile", bot_id=BOT_ID)
    await receiver.wait(lambda: len(_recipients(receiver.accepted)) == 6)

    mine = _of([r for r in receiver.requests if r.event["type"] == "message.received"], "cid")
    assert [r.event["data"]["text"] for r in mine] == [failing] * 3 + ["second", "third"]
    assert len({r.id for r in mine[:3]}) == 1  # the same webhook-id on each retry
    for r in mine:
        r.verify(secret)
    accepted = [r for r in receiver.accepted if r.event["type"] == "message.received"]
    first = next(r for r in accepted if r.event["data"]["text"] == failing)
    other = next(r for r in accepted if r.event["data"]["recipient"] == "dan")
    assert other.at < first.at  # dan's event did not wait for cid's retries
    # Retried on the schedule [0, 0.4, 0.8]: no sooner than 1.2 s after the first try.
    assert first.at - mine[0].at >= 1.2
