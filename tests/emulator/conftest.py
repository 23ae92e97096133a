"""An aiogram Bot pointed at the session's emulator (the `telegram_emulator` fixture).

One Bot for the whole session: aiogram's session close sleeps 250 ms, too slow per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from herald.emulator.testing import EmulatorHandle

TOKEN = "123456:TEST-token"


def make_bot(base_url: str, token: str = TOKEN, timeout: float = 5.0) -> Bot:
    api = TelegramAPIServer.from_base(base_url)
    return Bot(token, session=AiohttpSession(api=api, timeout=timeout))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def bot(_telegram_emulator_session: EmulatorHandle) -> AsyncIterator[Bot]:
    bot = make_bot(_telegram_emulator_session.base_url)
    yield bot
    await bot.session.close()
