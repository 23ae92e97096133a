"""aiogram's own session against Herald's (`JsonSession`): client CPU per request.

    .venv/bin/python bench/aiogram_session.py [--messages 6000] [--rounds 3]

Starts the emulator (limits off) and, from this process, sends `--messages` messages with
a URL button (what `build_request` makes of a task's content) through aiogram's `Bot`,
100 at once, alternately with aiogram's `AiohttpSession` (a form, every nested object
JSON inside it) and Herald's `JsonSession` (one JSON body), `--rounds` times. Prints
messages/s and this process's CPU per message (user + system, `time.process_time`),
which is what a worker spends on each send's request and answer, then `uptime`.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bench.delivery_common import TOKEN, emulator, loadavg
from herald.chat_id import ChatId
from herald.telegram.sender import JsonSession, build_request

CONCURRENCY = 100
CONTENT = {
    "text": "Your order 1042 has shipped",
    "buttons": [[{"text": "Track", "url": "https://example.com/t/1042"}]],
}


async def run(base_url: str, session_type: type[AiohttpSession], n: int) -> tuple[float, float]:
    """Messages/s and CPU microseconds per message."""
    session = session_type(api=TelegramAPIServer.from_base(base_url), limit=CONCURRENCY)
    bot = Bot(TOKEN, session=session)

    async def sender(k: int) -> None:
        for i in range(k, n, CONCURRENCY):
            await bot(build_request(ChatId(str(1 + i % 1000)), CONTENT))

    try:
        await bot(build_request(ChatId("1"), CONTENT))  # connect, build the models
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(sender(k) for k in range(CONCURRENCY)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await bot.session.close()
    return n / wall, cpu / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with emulator(limits=False) as base_url:
        for _ in range(args.rounds):
            for session_type in (AiohttpSession, JsonSession):
                rate, us = await run(base_url, session_type, args.messages)
                print(f"{session_type.__name__:<15} {rate:7,.0f} messages/s  {us:5.0f} us CPU/msg")
    print(f"load average: {loadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
