"""A worker's aiogram models are built when used, and still read every answer Herald gets
(issue 14, cold start; `herald.telegram.lazy_models`).

Each check runs in a fresh interpreter, as `herald worker` does: in this test process,
other tests have already built whatever models they used.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from herald.emulator.testing import EmulatorHandle

# What `herald worker` imports before it forks, in its order.
_BUILT = """
import importlib, json, sys
import herald.cli, herald.preflight
from herald.worker import runner
importlib.import_module(runner.TASKS_MODULE)
from aiogram import methods, types
names = ["SendMessage", "SendPhoto", "SendDocument", "GetUpdates", "SetWebhook"]
built = {n: getattr(methods, n).__pydantic_complete__ for n in names}
names = ["InlineKeyboardMarkup", "LinkPreviewOptions", "Update", "ChatFullInfo", "Sticker"]
built.update({n: getattr(types, n).__pydantic_complete__ for n in names})
loaded = [m for m in ("fastapi", "sqlalchemy.orm", "aiogram") if m in sys.modules]
print(json.dumps([built, loaded]))
"""

# Herald's sender, to the emulator, for every kind of content; what aiogram read back.
_SENDS = """
import asyncio, json, sys
from herald.chat_id import ChatId
from herald.config import Settings
from herald.telegram.sender import build_request, make_bot
from aiogram import types

CONTENTS = [
    {"text": "<b>Order</b> 7 shipped", "parse_mode": "HTML",
     "buttons": [[{"text": "Track", "url": "https://example.com/t/7"}]]},
    {"photo": "https://example.com/p.jpg", "caption": "the <i>parcel</i>", "parse_mode": "HTML"},
    {"document": "https://example.com/invoice.pdf", "caption": "invoice",
     "buttons": [[{"text": "Pay", "url": "https://example.com/pay"}]]},
]

async def main():
    settings = Settings(_env_file=None, bot_token="123456:cold-start",
                        telegram_api_url=sys.argv[1], jwt_secret="x" * 40)
    bot = make_bot(settings)
    out = []
    try:
        for content in CONTENTS:
            m = await bot(build_request(ChatId.parse("701"), content))
            markup = m.reply_markup
            entities = m.entities or m.caption_entities or []
            out.append({
                "class": type(m).__name__,
                "message_id": m.message_id,
                "chat": [type(m.chat).__name__, m.chat.id],
                "from": [type(m.from_user).__name__, m.from_user.is_bot],
                "text": m.text or m.caption,
                "entities": [[type(e).__name__, e.type] for e in entities],
                "photo": [[type(p).__name__, p.width] for p in m.photo or []],
                "document": m.document and [type(m.document).__name__, m.document.file_name],
                "buttons": markup
                and [[b.text, b.url] for row in markup.inline_keyboard for b in row],
            })
    finally:
        await bot.session.close()
    # Still lazy: nothing here needed a chat's full info.
    out.append(types.ChatFullInfo.__pydantic_complete__)
    print(json.dumps(out))

asyncio.run(main())
"""


async def _run(code: str, *args: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_a_worker_builds_before_its_fork_what_it_sends_and_nothing_it_does_not() -> None:
    built, loaded = await _run(_BUILT)
    # Nor what taskiq and the shared modules would bring and the worker does not use:
    # FastAPI (taskiq's injection accepts its `Depends`), SQLAlchemy's ORM (the tables).
    assert loaded == ["aiogram"]
    assert built == {
        "SendMessage": True,
        "SendPhoto": True,
        "SendDocument": True,
        "InlineKeyboardMarkup": True,
        "LinkPreviewOptions": True,
        # The models of the Bot API Herald does not call: aiogram's import no longer builds
        # them, which was most of a worker's start-up.
        "GetUpdates": False,
        "SetWebhook": False,
        "Update": False,
        "ChatFullInfo": False,
        "Sticker": False,
    }


async def test_lazily_built_models_read_every_kind_of_message_herald_sends(
    tg: EmulatorHandle,
) -> None:
    *answers, chat_full_info_built = await _run(_SENDS, tg.base_url)
    sent = tg.messages(701)
    assert [a["message_id"] for a in answers] == [m["message_id"] for m in sent]
    common = {"class": "Message", "chat": ["Chat", 701], "from": ["User", True]}
    assert answers == [
        {
            **common,
            "message_id": sent[0]["message_id"],
            "text": "Order 7 shipped",
            "entities": [["MessageEntity", "bold"]],
            "photo": [],
            "document": None,
            "buttons": [["Track", "https://example.com/t/7"]],
        },
        {
            **common,
            "message_id": sent[1]["message_id"],
            "text": "the parcel",
            "entities": [["MessageEntity", "italic"]],
            "photo": [["PhotoSize", 90], ["PhotoSize", 800]],
            "document": None,
            "buttons": None,
        },
        {
            **common,
            "message_id": sent[2]["message_id"],
            "text": "invoice",
            "entities": [],
            "photo": [],
            "document": ["Document", "invoice.pdf"],
            "buttons": [["Pay", "https://example.com/pay"]],
        },
    ]
    assert chat_full_info_built is False
