"""The Bot API methods Herald uses, with Telegram's own checks.

A send method validates its input as Telegram does (chat, text or caption after entity
parsing, file reference, keyboard), then passes the rate limits, then is accepted: the
order in which Telegram answers (a refused message consumes no rate).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from herald.emulator.chats import ChatBook
from herald.emulator.records import bot_id
from herald.emulator.replies import BotApiError
from herald.emulator.updates import BotUpdates
from herald.markup import MarkupError, format_text

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
# A string that looks like one of Telegram's file ids (base64url, long).
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{20,}")
_BUTTON_URL = re.compile(r"(https?|tg)://\S+")


class EmulatorState(Protocol):
    """What a method needs of the emulator (`core.Emulator`, which dispatches to METHODS):
    declared here so that this module does not import the one that imports it."""

    chats: ChatBook
    files: dict[str, dict[str, Any]]  # by file_id, the files sends referred to

    def bot(self, token: str) -> dict[str, Any] | None: ...

    def check_rate(self, token: str, chat_id: int) -> None: ...

    def bot_updates(self, bot: int) -> BotUpdates: ...

    def accept(
        self, token: str, chat_id: int, method: str, logged: dict[str, Any]
    ) -> tuple[int, int]: ...


class Upload:
    """A file sent in a multipart request."""

    def __init__(self, filename: str, size: int, content_type: str) -> None:
        self.filename = filename
        self.size = size
        self.content_type = content_type


def _formatted(raw: object, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    try:
        return format_text(str(raw), params.get("parse_mode") or None)
    except MarkupError as exc:
        raise BotApiError(400, str(exc)) from None


def _markup(params: dict[str, Any]) -> dict[str, Any] | None:
    raw = params.get("reply_markup")
    if not raw:
        return None
    try:
        markup = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        markup = None
    if not isinstance(markup, dict):
        raise BotApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard") or []:
        for button in row if isinstance(row, list) else []:
            url = button.get("url") if isinstance(button, dict) else None
            if url is not None and not _BUTTON_URL.fullmatch(str(url)):
                raise BotApiError(
                    400,
                    f"Bad Request: inline keyboard button URL '{url}' is invalid: Wrong HTTP URL",
                )
    return markup


def _message(
    emu: EmulatorState, token: str, chat_id: int, method: str, logged: dict[str, Any]
) -> dict[str, Any]:
    emu.check_rate(token, chat_id)
    message_id, date = emu.accept(token, chat_id, method, logged)
    chat = emu.chats.chat_object(chat_id)
    message = {"message_id": message_id, "chat": chat, "date": date}
    if chat["type"] == "channel":
        message["sender_chat"] = chat  # a channel post is signed by the channel, not the bot
    else:
        message["from"] = emu.bot(token)
    return message


def send_message(emu: EmulatorState, token: str, params: dict[str, Any]) -> dict[str, Any]:
    chat_id = emu.chats.target(params.get("chat_id"))
    raw = params.get("text")
    text, entities = _formatted(raw, params) if raw else ("", [])
    if not text:
        raise BotApiError(400, "Bad Request: message text is empty")
    if len(text) > TEXT_LIMIT:
        raise BotApiError(400, "Bad Request: message is too long")
    markup = _markup(params)
    logged: dict[str, Any] = {"text": text, "parse_mode": params.get("parse_mode")}
    if entities:
        logged["entities"] = entities
    if markup is not None:
        logged["reply_markup"] = markup
    result = _message(emu, token, chat_id, "sendMessage", logged)
    result["text"] = text
    if entities:
        result["entities"] = entities
    if markup is not None:
        result["reply_markup"] = markup
    return result


def _file(emu: EmulatorState, params: dict[str, Any], field: str) -> tuple[str, dict[str, Any]]:
    """The file a media send refers to: an upload, a URL or a known-looking file_id."""
    raw = params.get(field)
    if isinstance(raw, str) and raw.startswith("attach://"):
        raw = params.get(raw.removeprefix("attach://"))
    if isinstance(raw, Upload):
        source = f"upload:{raw.filename}:{raw.size}"
    elif isinstance(raw, str) and raw:
        source = raw
        if source in emu.files:
            return source, emu.files[source]
        if not (source.startswith(("http://", "https://")) or _FILE_ID.fullmatch(source)):
            raise BotApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
    else:
        raise BotApiError(400, f"Bad Request: there is no {field} in the request")
    digest = hashlib.sha1(source.encode()).hexdigest()
    file = {"file_id": f"AgAD{digest}", "file_unique_id": f"AQAD{digest[:16]}"}
    emu.files[file["file_id"]] = file
    return source, file


def _send_media(
    emu: EmulatorState, token: str, params: dict[str, Any], field: str
) -> dict[str, Any]:
    chat_id = emu.chats.target(params.get("chat_id"))
    source, file = _file(emu, params, field)
    raw = params.get("caption")
    caption, entities = _formatted(raw, params) if raw else ("", [])
    if len(caption) > CAPTION_LIMIT:
        raise BotApiError(400, "Bad Request: message caption is too long")
    markup = _markup(params)
    method = "sendPhoto" if field == "photo" else "sendDocument"
    logged: dict[str, Any] = {
        field: source,
        "caption": caption or None,
        "parse_mode": params.get("parse_mode"),
    }
    if entities:
        logged["caption_entities"] = entities
    if markup is not None:
        logged["reply_markup"] = markup
    result = _message(emu, token, chat_id, method, logged)
    if field == "photo":
        result["photo"] = [
            {**file, "width": 90, "height": 90, "file_size": 1_200},
            {**file, "width": 800, "height": 800, "file_size": 48_000},
        ]
    else:
        name = source.rsplit("/", 1)[-1] or "document"
        result["document"] = {**file, "file_name": name, "file_size": 10_000}
    if caption:
        result["caption"] = caption
    if entities:
        result["caption_entities"] = entities
    if markup is not None:
        result["reply_markup"] = markup
    return result


def send_photo(emu: EmulatorState, token: str, params: dict[str, Any]) -> dict[str, Any]:
    return _send_media(emu, token, params, "photo")


def send_document(emu: EmulatorState, token: str, params: dict[str, Any]) -> dict[str, Any]:
    return _send_media(emu, token, params, "document")


def get_me(emu: EmulatorState, token: str, params: dict[str, Any]) -> Any:
    return emu.bot(token)


_GIFTS = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription")
_FULL_INFO = {
    "accent_color_id": 0,
    "max_reaction_count": 11,
    "accepted_gift_types": {**dict.fromkeys(_GIFTS, True), "gifts_from_channels": True},
}


def get_chat(emu: EmulatorState, token: str, params: dict[str, Any]) -> Any:
    chat_id = emu.chats.target(params.get("chat_id"))
    return {**emu.chats.chat_object(chat_id), **_FULL_INFO}


def send_chat_action(emu: EmulatorState, token: str, params: dict[str, Any]) -> Any:
    emu.chats.target(params.get("chat_id"))
    return True


_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _flag(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _int_param(params: dict[str, Any], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise BotApiError(400, f"Bad Request: invalid {name} specified") from None


def _allowed_updates(params: dict[str, Any], box: BotUpdates) -> None:
    """Telegram remembers the last allowed_updates it was given (a JSON list)."""
    raw = params.get("allowed_updates")
    if raw is None or raw == "":
        return
    try:
        kinds = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        kinds = None
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise BotApiError(400, "Bad Request: can't parse allowed updates")
    box.allowed = kinds


def get_updates(emu: EmulatorState, token: str, params: dict[str, Any]) -> Any:
    """The updates from `offset` on, after confirming those below it. The wait of a long
    poll (`timeout`) happens before this, in the HTTP layer (app.py)."""
    box = emu.bot_updates(bot_id(token))
    if box.webhook_url:
        raise BotApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active;"
            " use deleteWebhook to delete the webhook first",
        )
    _allowed_updates(params, box)
    box.confirm(_int_param(params, "offset", 0))
    return box.take(min(max(_int_param(params, "limit", 100), 1), 100))


def set_webhook(emu: EmulatorState, token: str, params: dict[str, Any]) -> Any:
    url = str(params.get("url") or "")
    if url and not re.fullmatch(r"https?://\S+", url):
        raise BotApiError(
            400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
        )
    secret = params.get("secret_token") or None
    if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
        raise BotApiError(400, "Bad Request: secret token contains unallowed characters")
    box = emu.bot_updates(bot_id(token))
    _allowed_updates(params, box)
    box.set_webhook(
        url, None if secret is None else str(secret), _flag(params.get("drop_pending_updates"))
    )
    return True


def delete_webhook(emu: EmulatorState, token: str, params: dict[str, Any]) -> Any:
    emu.bot_updates(bot_id(token)).delete_webhook(_flag(params.get("drop_pending_updates")))
    return True


def get_webhook_info(emu: EmulatorState, token: str, params: dict[str, Any]) -> Any:
    return emu.bot_updates(bot_id(token)).info()


Method = Callable[[EmulatorState, str, dict[str, Any]], Any]

# Keys are lower case: Telegram's method names are case-insensitive.
METHODS: dict[str, Method] = {
    "getme": get_me,
    "getchat": get_chat,
    "sendchataction": send_chat_action,
    "sendmessage": send_message,
    "sendphoto": send_photo,
    "senddocument": send_document,
    "getupdates": get_updates,
    "setwebhook": set_webhook,
    "deletewebhook": delete_webhook,
    "getwebhookinfo": get_webhook_info,
}
# Methods that deliver a message: faults and rate limits apply to these only.
SENDS = frozenset({"sendmessage", "sendphoto", "senddocument"})
