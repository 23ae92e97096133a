"""Each Bot API method Herald uses, through aiogram's real Bot, and the message log."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramNotFound, TelegramUnauthorizedError
from aiogram.methods import TelegramMethod
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    User,
)

from herald.emulator.testing import EmulatorHandle, run_emulator
from tests.emulator.conftest import TOKEN, make_bot


class SendTelepathy(TelegramMethod[bool]):
    """A method Telegram does not have."""

    __returning__ = bool
    __api_method__ = "sendTelepathy"

    chat_id: int


async def test_get_me_answers_for_any_token_of_telegrams_form(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    me = await bot.get_me()
    assert isinstance(me, User)
    assert (me.id, me.is_bot) == (123456, True)
    other = make_bot(telegram_emulator.base_url, token="987:another-bot")
    try:
        assert (await other.get_me()).id == 987
    finally:
        await other.session.close()


async def test_send_message_returns_the_message_and_logs_it(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    first = await bot.send_message(42, "hello")
    second = await bot.send_message(42, "again")
    group = await bot.send_message(-7, "to the group")
    assert (first.message_id, second.message_id, group.message_id) == (1, 2, 1)
    assert (first.chat.id, first.chat.type, first.text) == (42, "private", "hello")
    assert (group.chat.type, first.from_user and first.from_user.id) == ("group", 123456)
    log = telegram_emulator.messages()
    assert [(m["chat_id"], m["message_id"], m["text"]) for m in log] == [
        (42, 1, "hello"),
        (42, 2, "again"),
        (-7, 1, "to the group"),
    ]
    assert all(m["method"] == "sendMessage" and m["bot_id"] == 123456 for m in log)
    assert log[0]["time"] <= log[1]["time"] <= log[2]["time"]
    assert [m["text"] for m in telegram_emulator.messages(42)] == ["hello", "again"]
    assert telegram_emulator.messages(99) == []


async def test_send_message_parses_entities(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    html = await bot.send_message(
        1, "<b>bold</b> and <a href='https://x.org'>link</a>", parse_mode="HTML"
    )
    assert html.text == "bold and link"
    assert [(e.type, e.offset, e.length, e.url) for e in html.entities or []] == [
        ("bold", 0, 4, None),
        ("text_link", 9, 4, "https://x.org/"),  # Telegram adds the path, as tdlib does
    ]
    md = await bot.send_message(1, "*hi* _there_ 1\\.5", parse_mode="MarkdownV2")
    assert md.text == "hi there 1.5"
    assert [(e.type, e.offset, e.length) for e in md.entities or []] == [
        ("bold", 0, 2),
        ("italic", 3, 5),
    ]
    assert telegram_emulator.messages(1)[1]["text"] == "hi there 1.5"


async def test_send_message_with_an_inline_keyboard(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Open", url="https://example.org/a")]]
    )
    message = await bot.send_message(5, "see", reply_markup=keyboard)
    assert message.reply_markup is not None
    assert message.reply_markup.model_dump(exclude_none=True) == keyboard.model_dump(
        exclude_none=True
    )
    logged = telegram_emulator.messages(5)[0]["reply_markup"]
    assert logged == {"inline_keyboard": [[{"text": "Open", "url": "https://example.org/a"}]]}


async def test_send_photo_and_document_by_url_and_file_id(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    photo = await bot.send_photo(
        9, "https://example.org/cat.png", caption="<i>cat</i>", parse_mode="HTML"
    )
    assert photo.caption == "cat"
    assert photo.photo
    assert photo.photo[-1].width == 800
    file_id = photo.photo[-1].file_id
    again = await bot.send_photo(9, file_id)
    assert again.photo
    assert again.photo[0].file_id == file_id
    assert again.caption is None
    document = await bot.send_document(9, "https://example.org/report.pdf", caption="report")
    assert document.document
    assert document.document.file_name == "report.pdf"
    by_id = await bot.send_document(9, document.document.file_id)
    assert by_id.document
    assert by_id.document.file_id == document.document.file_id
    log = telegram_emulator.messages(9)
    assert [(m["method"], m.get("photo") or m.get("document"), m["caption"]) for m in log] == [
        ("sendPhoto", "https://example.org/cat.png", "cat"),
        ("sendPhoto", file_id, None),
        ("sendDocument", "https://example.org/report.pdf", "report"),
        ("sendDocument", document.document.file_id, None),
    ]


async def test_send_document_upload(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    upload = BufferedInputFile(b"x" * 1000, filename="data.csv")
    message = await bot.send_document(3, upload, caption="attached")
    assert message.document
    assert message.caption == "attached"
    assert telegram_emulator.messages(3)[0]["document"] == "upload:data.csv:1000"


async def test_get_chat_tells_the_kind_by_id(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    kinds = [(await bot.get_chat(chat_id)).type for chat_id in (8, -8, -1001234567890)]
    assert kinds == ["private", "group", "supergroup"]


async def test_unknown_method_is_404_not_found(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    with pytest.raises(TelegramNotFound, match="Not Found"):
        await bot(SendTelepathy(chat_id=1))
    assert telegram_emulator.received[-1]["status"] == 404
    assert telegram_emulator.messages() == []


async def test_tokens_option_refuses_other_tokens_with_401() -> None:
    async with run_emulator(tokens=[TOKEN], limits=False) as tg:
        allowed = make_bot(tg.base_url)
        refused = make_bot(tg.base_url, token="111:not-this-one")
        try:
            assert (await allowed.get_me()).id == 123456
            with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
                await refused.send_message(1, "hi")
        finally:
            await allowed.session.close()
            await refused.session.close()
        assert tg.messages() == []
        assert [r["status"] for r in tg.received] == [200]  # a refused token is not kept
