"""The aiogram sender: one `Bot` per process, pointed at Telegram or any Bot API server.

A task's `content` (stored at intake) holds sendMessage's parameters besides chat_id:

    {"text": "...", "parse_mode": "HTML" | "MarkdownV2", "disable_notification": bool,
     "protect_content": bool, "link_preview": bool (default false: previews off),
     "message_thread_id": int, "buttons": [[{"text": "...", "url": "https://..."}]]}

or, instead of "text", "photo" or "document" (a URL or file_id) with an optional
"caption": sent with sendPhoto / sendDocument (the gateway checks the caption's length).

The base URL is injected (`HERALD_TELEGRAM_API_URL`), so tests and benchmarks point the
real aiogram client at the emulator instead of patching it.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import SendDocument, SendMessage, SendPhoto
from aiogram.methods.base import Response
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Message

from herald.chat_id import ChatId
from herald.config import Settings

# aiogram validates every answer with `Response[method.__returning__]`. pydantic keeps
# parametrized generics in a WeakValueDictionary, so unless something holds the class it
# is garbage between calls and rebuilt (schema and validator) on the next send: 13.7% of
# a worker's CPU in a profile. Holding it here makes every send a cache hit.
_RESPONSE_MODELS = (Response[Message],)
# aiogram's models are built on first use (`telegram/lazy_models.py`): these, what a send
# builds, are built here, when `herald worker` imports them before it forks, rather than
# in each worker process on its first send. The answer's (Message, through the Response
# above) is built by that line.
SENT_MODELS = (
    SendMessage,
    SendPhoto,
    SendDocument,
    InlineKeyboardMarkup,
    InlineKeyboardButton,
    LinkPreviewOptions,
)
for _model in SENT_MODELS:
    _model.model_rebuild()


def make_bot(settings: Settings, *, connections: int = 100) -> Bot:
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.telegram_api_url),
        timeout=settings.telegram_timeout,
        limit=connections,
    )
    return Bot(settings.bot_token, session=session)


def _markup(content: dict[str, Any]) -> InlineKeyboardMarkup | None:
    buttons = content.get("buttons")
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=b["text"], url=b["url"]) for b in row] for row in buttons
        ]
    )


def build_send_message(chat_id: ChatId, content: dict[str, Any]) -> SendMessage:
    markup = _markup(content)
    return SendMessage(
        chat_id=chat_id.ref,
        text=content["text"],
        parse_mode=content.get("parse_mode"),
        disable_notification=content.get("disable_notification"),
        protect_content=content.get("protect_content"),
        message_thread_id=content.get("message_thread_id"),
        link_preview_options=LinkPreviewOptions(is_disabled=not content.get("link_preview", False)),
        reply_markup=markup,
    )


def build_request(
    chat_id: ChatId, content: dict[str, Any]
) -> SendMessage | SendPhoto | SendDocument:
    """sendMessage for text; sendPhoto / sendDocument (URL or file_id, optional caption)."""
    if "photo" not in content and "document" not in content:
        return build_send_message(chat_id, content)
    common: dict[str, Any] = {
        "chat_id": chat_id.ref,
        "caption": content.get("caption"),
        "parse_mode": content.get("parse_mode"),
        "disable_notification": content.get("disable_notification"),
        "protect_content": content.get("protect_content"),
        "message_thread_id": content.get("message_thread_id"),
        "reply_markup": _markup(content),
    }
    if "photo" in content:
        return SendPhoto(photo=content["photo"], **common)
    return SendDocument(document=content["document"], **common)


class TelegramSender:
    """Sends one message and returns Telegram's message_id; aiogram's exceptions pass through."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, chat_id: ChatId, content: dict[str, Any]) -> int:
        message = await self.bot(build_request(chat_id, content))
        return message.message_id

    async def close(self) -> None:
        await self.bot.session.close()
