"""What intake stores in `tasks.content` is what the sender sends: checked end to end.

A task goes in through the gateway; its stored content goes out through the worker's
TelegramSender (real aiogram) to the emulator, which records what Telegram would get.
"""

from __future__ import annotations

import json
from typing import Any

from herald.chat_id import ChatId
from herald.emulator.testing import EmulatorHandle
from herald.telegram.sender import TelegramSender, make_bot
from tests.api.conftest import Api


async def _send_stored(api: Api, emulator: EmulatorHandle, body: dict[str, Any]) -> dict[str, Any]:
    resp = await api.post_task(body, key=str(len(emulator.received)) + str(body))
    assert resp.status_code == 201, resp.text
    row = await api.pool.fetchrow(
        "SELECT chat_id, content FROM tasks WHERE id = $1", resp.json()["id"]
    )
    settings = api.settings.model_copy(update={"telegram_api_url": emulator.base_url})
    sender = TelegramSender(make_bot(settings))
    try:
        await sender.send(ChatId(row["chat_id"]), row["content"])
    finally:
        await sender.close()
    request: dict[str, Any] = emulator.received[-1]
    return request


async def test_text_task_reaches_telegram_as_sent(
    api: Api, telegram_emulator: EmulatorHandle
) -> None:
    body = {
        "chat_id": 501,
        "text": "<b>Paid</b>",
        "parse_mode": "HTML",
        "disable_notification": True,
        "buttons": [[{"text": "Receipt", "url": "https://example.com/r/1"}]],
    }
    request = await _send_stored(api, telegram_emulator, body)
    [message] = telegram_emulator.messages(501)
    assert message["text"] == "Paid"  # the emulator parsed the HTML like Telegram
    assert request["method"].lower() == "sendmessage"
    params = request["params"]
    assert params["disable_notification"] in (True, "true")
    # Nested objects: JSON text in a form, objects in a JSON body (kept as their JSON text).
    assert _nested(params["reply_markup"]) == {
        "inline_keyboard": [[{"text": "Receipt", "url": "https://example.com/r/1"}]]
    }
    assert _nested(params["link_preview_options"]) == {"is_disabled": True}


def _nested(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def test_photo_and_document_tasks_reach_telegram(
    api: Api, telegram_emulator: EmulatorHandle
) -> None:
    await _send_stored(
        api,
        telegram_emulator,
        {"chat_id": 502, "photo": "https://example.com/a.jpg", "caption": "a cat"},
    )
    await _send_stored(
        api,
        telegram_emulator,
        {"chat_id": 502, "document": "https://example.com/r.pdf", "caption": "report"},
    )
    assert [r["method"].lower() for r in telegram_emulator.received] == [
        "sendphoto",
        "senddocument",
    ]
    messages = telegram_emulator.messages(502)
    assert [m.get("caption") for m in messages] == ["a cat", "report"]
    assert "photo" in messages[0]
    assert "document" in messages[1]
