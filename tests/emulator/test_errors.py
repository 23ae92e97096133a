"""Telegram's own checks, each mapped by aiogram to the exception Herald classifies."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
)

from herald.emulator.testing import EmulatorHandle


async def test_text_length_is_counted_after_entity_parsing(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    assert (await bot.send_message(1, "a" * 4096)).text == "a" * 4096
    # 4103 characters of source, 4096 after the tags are parsed away.
    assert await bot.send_message(1, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(1, "a" * 4097)
    # Telegram counts characters (code points), not UTF-16 units: 4096 emoji pass.
    assert await bot.send_message(1, "😀" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(1, "😀" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(1, "  <b> </b> ", parse_mode="HTML")
    assert len(telegram_emulator.messages()) == 3


async def test_caption_limit(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    assert await bot.send_photo(1, "https://x.org/a.png", caption="c" * 1024)
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(1, "https://x.org/a.png", caption="c" * 1025)
    assert len(telegram_emulator.messages()) == 1


@pytest.mark.parametrize(
    ("text", "parse_mode", "detail"),
    [
        ("<b>bold", "HTML", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", "HTML", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("a < b", "HTML", 'Unsupported start tag "" at byte offset 2'),
        ("<blink>x</blink>", "HTML", 'Unsupported start tag "blink" at byte offset 0'),
        ("x</b>", "HTML", "Unexpected end tag at byte offset 1"),
        (
            "Version 1.5",
            "MarkdownV2",
            "Character '.' is reserved and must be escaped with the preceding '\\'",
        ),
        ("*bold", "MarkdownV2", "Can't find end of Bold entity at byte offset 0"),
        (
            "wow!",
            "MarkdownV2",
            "Character '!' is reserved and must be escaped with the preceding '\\'",
        ),
    ],
)
async def test_malformed_markup_cannot_parse_entities(
    telegram_emulator: EmulatorHandle, bot: Bot, text: str, parse_mode: str, detail: str
) -> None:
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.send_message(1, text, parse_mode=parse_mode)
    assert caught.value.message == f"Bad Request: can't parse entities: {detail}"
    assert telegram_emulator.messages() == []


async def test_chat_not_found(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    telegram_emulator.set_missing(404)
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(404, "anyone?")
    assert await bot.send_message(405, "someone")
    assert [m["chat_id"] for m in telegram_emulator.messages()] == [405]


async def test_blocked_user_and_kicked_bot(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    telegram_emulator.block_chat(10)
    telegram_emulator.block_chat(-10)
    with pytest.raises(TelegramForbiddenError) as private:
        await bot.send_message(10, "hi")
    assert private.value.message == "Forbidden: bot was blocked by the user"
    with pytest.raises(TelegramForbiddenError) as group:
        await bot.send_photo(-10, "https://x.org/a.png")
    assert group.value.message == "Forbidden: bot was kicked from the group chat"
    assert telegram_emulator.messages() == []
    assert [r["status"] for r in telegram_emulator.received] == [403, 403]


async def test_group_upgraded_to_supergroup(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    telegram_emulator.migrate_chat(-20, -1000000000020)
    with pytest.raises(TelegramMigrateToChat) as caught:
        await bot.send_message(-20, "hi group")
    assert caught.value.migrate_to_chat_id == -1000000000020
    # aiogram rewrites the description and keeps Telegram's at the end.
    assert caught.value.message.endswith(
        "Original description: Bad Request: group chat was upgraded to a supergroup chat"
    )
    assert telegram_emulator.received[-1]["status"] == 400
    moved = await bot.send_message(caught.value.migrate_to_chat_id, "hi supergroup")
    assert moved.chat.type == "supergroup"
    assert [m["chat_id"] for m in telegram_emulator.messages()] == [-1000000000020]


async def test_bad_file_reference_and_keyboard(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await bot.send_photo(1, "not-a-file")
    with pytest.raises(TelegramBadRequest, match="inline keyboard button URL 'ftp:x' is invalid"):
        await bot.send_message(
            1,
            "x",
            reply_markup={"inline_keyboard": [[{"text": "a", "url": "ftp:x"}]]},  # type: ignore[arg-type]
        )
    assert telegram_emulator.messages() == []
