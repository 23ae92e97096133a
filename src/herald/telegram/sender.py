"""The aiogram sender: one `Bot` per process, pointed at Telegram or any Bot API server.

A task's `content` (built at intake, `herald.api.schemas.TaskIn.content`) holds the
method's parameters besides chat_id; absent keys mean Telegram's defaults:

    {"text": "..."} or {"photo": url_or_file_id} or {"document": ...}, with "caption",
    "parse_mode" ("HTML" | "MarkdownV2"), "disable_notification", "protect_content",
    "disable_link_preview", "message_thread_id",
    "buttons": [[{"text": "...", "url": "https://..."}]]

The base URL is injected (`HERALD_TELEGRAM_API_URL`), so tests and benchmarks point the
real aiogram client at the emulator instead of patching it.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import SendDocument, SendMessage, SendPhoto
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions

from herald.config import Settings


def make_bot(settings: Settings, *, connections: int = 100) -> Bot:
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.telegram_api_url),
        timeout=settings.telegram_timeout,
        limit=connections,
    )
    return Bot(settings.bot_token, session=session)


def chat_ref(chat_id: str) -> int | str:
    """Numeric ids go as integers, `@channel` usernames as they are."""
    try:
        return int(chat_id)
    except ValueError:
        return chat_id


def _markup(content: dict[str, Any]) -> InlineKeyboardMarkup | None:
    rows = content.get("buttons")
    if not rows:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=b["text"], url=b["url"]) for b in row] for row in rows
        ]
    )


def build_method(chat_id: str, content: dict[str, Any]) -> SendMessage | SendPhoto | SendDocument:
    """The Bot API call for one task: sendMessage, or sendPhoto / sendDocument for media."""
    common: dict[str, Any] = {
        "chat_id": chat_ref(chat_id),
        "parse_mode": content.get("parse_mode"),
        "disable_notification": content.get("disable_notification"),
        "protect_content": content.get("protect_content"),
        "message_thread_id": content.get("message_thread_id"),
        "reply_markup": _markup(content),
    }
    if "photo" in content:
        return SendPhoto(photo=content["photo"], caption=content.get("caption"), **common)
    if "document" in content:
        return SendDocument(document=content["document"], caption=content.get("caption"), **common)
    if content.get("disable_link_preview"):
        common["link_preview_options"] = LinkPreviewOptions(is_disabled=True)
    return SendMessage(text=content["text"], **common)


class TelegramSender:
    """Sends one message and returns Telegram's message_id; aiogram's exceptions pass through."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, chat_id: str, content: dict[str, Any]) -> int:
        message = await self.bot(build_method(chat_id, content))
        return message.message_id

    async def close(self) -> None:
        await self.bot.session.close()
