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

from typing import Any, cast

import orjson
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import SendDocument, SendMessage, SendPhoto
from aiogram.methods.base import Response, TelegramMethod, TelegramType
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
)
from aiohttp import ClientError, ClientTimeout

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


_JSON_HEADERS = {"Content-Type": "application/json"}


class JsonSession(AiohttpSession):
    """aiogram's aiohttp session, its parameters sent as one JSON body.

    The Bot API takes `application/json` for every method but uploads. aiogram's own
    session builds an aiohttp form, every nested object (a keyboard, the link preview
    options) encoded as a JSON string inside it: 8% of a worker's CPU in a profile, more
    with aiohttp's form handling. Here the same prepared values (aiogram's
    `prepare_value`, its defaults and enums) go out as one orjson document; a method
    that uploads a file (Herald sends none: photos and documents are URLs or file ids)
    takes aiogram's multipart path. Answers and errors are aiogram's own
    (`check_response`), so exceptions and their classification do not change.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(json_loads=orjson.loads, **kwargs)

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 (aiogram's signature)
    ) -> TelegramType:
        files: dict[str, InputFile] = {}
        body: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared:  # as aiogram's form: unset and false values are left out
                body[key] = prepared
        if files:
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:
            async with session.post(
                url,
                data=orjson.dumps(body),
                headers=_JSON_HEADERS,
                timeout=ClientTimeout(total=self.timeout if timeout is None else timeout),
            ) as resp:
                raw_result = await resp.text()
        except TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except ClientError as e:
            raise TelegramNetworkError(method=method, message=f"{type(e).__name__}: {e}") from e
        response = self.check_response(
            bot=bot, method=method, status_code=resp.status, content=raw_result
        )
        return cast(TelegramType, response.result)


def make_bot(settings: Settings, *, connections: int = 100) -> Bot:
    session = JsonSession(
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
