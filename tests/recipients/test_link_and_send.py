"""From a deep link to a message: a producer links a person, the person presses Start in
Telegram (the emulator calls Herald's webhook with the update), Herald binds the chat and
welcomes them once, and tasks naming the recipient reach that chat."""

from __future__ import annotations

import re

import httpx
import orjson

from tests.recipients.conftest import BOT_ID, SECRET, Herald, eventually

USER = 5001


async def test_deep_link_binds_and_a_task_by_recipient_is_delivered(herald: Herald) -> None:
    await herald.set_webhook()
    response = await herald.client.post("/api/recipients/alice/link")
    assert response.status_code == 201, response.text
    link = response.json()
    code = link["code"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,64}", code)
    assert link["link"] == f"https://t.me/herald_emulator_{BOT_ID}_bot?start={code}"
    assert await herald.recipient("alice") is None  # not bound before the person starts

    herald.tg.user_start(USER, code, bot_id=BOT_ID)
    bound = await eventually(lambda: herald.recipient("alice"))
    assert (bound["chat_id"], bound["state"]) == (USER, "active")
    await herald.deliver()
    welcome = await herald.tg.wait_messages(1, chat_id=USER)
    # The welcome configured for this producer (HERALD_RECIPIENT_WELCOME).
    assert welcome[0]["text"] == "Order news from shop will come here."

    created = await herald.post_task("order-1", recipient="alice", text="Your order shipped")
    assert created.status_code == 201, created.text
    assert (created.json()["recipient"], created.json()["chat_id"]) == ("alice", USER)
    await herald.deliver()
    messages = await herald.tg.wait_messages(2, chat_id=USER)
    assert messages[-1]["text"] == "Your order shipped"
    assert (await herald.task(created.json()["id"]))["status"] == "delivered"

    # The code was spent: another person starting with it binds nothing.
    herald.tg.user_start(USER + 1, code, bot_id=BOT_ID)
    await eventually(lambda: herald.count("telegram_updates", f"chat_id = '{USER + 1}'"))
    assert (await herald.recipient("alice"))["chat_id"] == USER  # type: ignore[index]

    # A reply is stored and listed for the producer whose recipient wrote it.
    herald.tg.user_send(USER, "thanks!", bot_id=BOT_ID)

    async def replies() -> list[dict[str, object]]:
        items = (await herald.client.get("/api/updates", params={"chat_id": USER})).json()["items"]
        return [i for i in items if i["update"]["message"].get("text") == "thanks!"]

    [reply] = await eventually(replies)
    assert reply["kind"] == "message"
    # Another producer sees no update of this chat; an operator (tasks:read) sees them all.
    for who, seen in (("other", 0), ("reader", 3)):
        listed = await herald.client.get(
            "/api/updates", headers={"Authorization": f"Bearer {herald.tokens[who]}"}
        )
        assert len(listed.json()["items"]) == seen, who


async def test_a_task_to_an_unbound_recipient_is_refused_and_stores_nothing(
    herald: Herald,
) -> None:
    response = await herald.post_task("to-bob", recipient="bob", text="hi")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "recipient_unknown"
    batch = await herald.client.post(
        "/api/tasks/batch",
        json={"items": [{"idempotency_key": "b1", "recipient": "bob", "text": "hi"}]},
    )
    assert batch.json()["results"][0]["error"]["code"] == "recipient_unknown"
    assert await herald.count("tasks") == 0
    both = await herald.post_task("both", recipient="bob", chat_id=1, text="hi")
    assert both.status_code == 422


async def test_the_same_start_twice_binds_once_and_welcomes_once(herald: Herald) -> None:
    await herald.set_webhook()
    code = await herald.link("carol", welcome="Hi Carol")
    herald.tg.user_start(USER, code, bot_id=BOT_ID)
    await eventually(lambda: herald.recipient("carol"))
    # Telegram retries a webhook call whose answer it missed: the same update again.
    [update] = [u for u in herald.tg.updates(BOT_ID)["delivered"] if "message" in u]
    for _ in range(2):
        again = await herald.client.post(
            "/telegram/webhook",
            content=orjson.dumps(update),
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        )
        assert again.status_code == 200
    await herald.deliver()
    await herald.tg.wait_messages(1, chat_id=USER)
    assert await herald.count("telegram_updates") == 1
    assert await herald.count("recipients") == 1
    assert await herald.count("tasks") == 1  # one welcome task
    assert [m["text"] for m in herald.tg.messages(USER)] == ["Hi Carol"]  # one welcome


async def test_a_wrong_or_missing_secret_is_401_and_stores_nothing(herald: Herald) -> None:
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0,
              "chat": {"id": USER, "type": "private"}, "text": "/start x"}}  # fmt: skip
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong" * 8}):
        response = await herald.client.post(
            "/telegram/webhook", content=orjson.dumps(update), headers=headers
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "webhook_secret_invalid"
    # Telegram itself with the wrong secret: refused, the update stays with Telegram.
    await herald.set_webhook(secret="x" * 40)
    herald.tg.user_send(USER, "hello", bot_id=BOT_ID)
    await eventually(lambda: _has_error(herald))
    assert await herald.count("telegram_updates") == 0
    assert len(herald.tg.updates(BOT_ID)["pending"]) == 1
    # With the right one, it arrives.
    await herald.set_webhook()
    await eventually(lambda: herald.count("telegram_updates"))
    assert herald.tg.updates(BOT_ID)["pending"] == []


async def _has_error(herald: Herald) -> bool:
    return "last_error_message" in herald.tg.updates(BOT_ID)["webhook"]


async def test_the_webhook_is_off_without_a_secret(database_url: str) -> None:
    from herald.api.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
            response = await client.post("/telegram/webhook", json={"update_id": 1})
    assert response.status_code == 404
