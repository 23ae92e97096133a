"""Run the emulator inside a test's event loop.

async with run_emulator(limits=False) as tg:
    bot = Bot("123:abc", session=AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url)))
    await bot.send_message(42, "hi")
    assert [m["text"] for m in tg.messages(42)] == ["hi"]
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from herald.emulator import people
from herald.emulator.app import start
from herald.emulator.core import Emulator
from herald.emulator.options import DEFAULT_KEEP, FaultConfig, LimitConfig, configs


class EmulatorHandle:
    """What a test sees of a running emulator. `RemoteEmulator` offers the same, async."""

    def __init__(self, emulator: Emulator, base_url: str) -> None:
        self.emulator = emulator
        self.base_url = base_url

    def messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """The messages accepted (of one chat, or all), in order: the latest `keep`."""
        return self.emulator.chat_messages(chat_id)

    @property
    def received(self) -> list[dict[str, Any]]:
        """The latest `keep` requests with a token the emulator accepts, including those
        answered with an error or a fault. No token: the bot's id (`bot_id`)."""
        return list(self.emulator.received)

    def stats(self) -> dict[str, int]:
        """How many messages and requests since the last reset, and chats with messages kept."""
        return self.emulator.stats()

    async def wait_messages(
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - the interface tests use
        chat_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """The messages once there are at least n; TimeoutError otherwise."""
        return await self.emulator.wait_messages(n, timeout, chat_id)

    def reset(self) -> None:
        """Forget messages, requests and chat marks; faults and limits back to the start options."""
        self.emulator.reset()

    def block_chat(self, chat_id: int) -> None:
        self.emulator.chats.blocked.add(chat_id)

    def migrate_chat(self, chat_id: int, new_chat_id: int, bot_id: int | None = None) -> None:
        """The group becomes a supergroup: sends to it get 400 with migrate_to_chat_id, and
        the bot (`bot_id`, or the one bot known) gets the service messages as updates."""
        people.migrate(self.emulator, bot_id or self.emulator.known_bot(), chat_id, new_chat_id)

    # --- people, as updates to a bot (`bot_id`, or the one bot the emulator knows) ------

    def _bot(self, bot_id: int | None) -> int:
        bot = bot_id or self.emulator.known_bot()
        if bot is None:
            raise ValueError("name the bot: bot_id (the emulator knows none, or several)")
        return bot

    def user_start(
        self, user_id: int, code: str | None = None, bot_id: int | None = None
    ) -> dict[str, Any]:
        """The user presses Start, from a deep link with `code` or not: `/start [code]`."""
        return people.start(self.emulator, self._bot(bot_id), user_id, code)

    def user_send(
        self, user_id: int, text: str, bot_id: int | None = None, reply_to: int | None = None
    ) -> dict[str, Any]:
        """The user writes to the bot; `reply_to`: in reply to that message of the chat."""
        return people.send_text(self.emulator, self._bot(bot_id), user_id, text, reply_to)

    def user_block(self, user_id: int, bot_id: int | None = None) -> None:
        """The user blocks the bot: sends get 403, and a my_chat_member update says kicked."""
        people.set_blocked(self.emulator, self._bot(bot_id), user_id, True)

    def user_unblock(self, user_id: int, bot_id: int | None = None) -> None:
        people.set_blocked(self.emulator, self._bot(bot_id), user_id, False)

    def updates(self, bot_id: int | None = None) -> dict[str, Any]:
        """The bot's updates: `pending` (not yet confirmed or delivered), `delivered`,
        `webhook` (getWebhookInfo's answer)."""
        box = self.emulator.bot_updates(self._bot(bot_id))
        return {
            "webhook": box.info(),
            "pending": list(box.pending),
            "delivered": list(box.delivered),
            "next_update_id": box.next_update_id,
            "conflicts": box.conflicts,  # long polls ended by a second poller's getUpdates
        }

    def set_missing(self, chat_id: int) -> None:
        self.emulator.chats.missing.add(chat_id)

    def name_chat(self, username: str, chat_id: int, kind: str = "channel") -> None:
        """Make `@username` name `chat_id` (a channel or supergroup, -100...). Unnamed
        usernames resolve too, each to a channel of its own (`chats.username_chat_id`)."""
        self.emulator.chats.name_chat(username, chat_id, kind)

    def set_faults(self, **faults: Any) -> None:
        """Replace the fault settings (unnamed ones back to none); reseeds the draw."""
        self.emulator.set_faults(FaultConfig(**faults))

    def set_limits(self, **limits: Any) -> None:
        """Replace the limit settings (unnamed ones back to Telegram's); buckets start empty."""
        self.emulator.set_limits(LimitConfig(**limits))

    @property
    def faults(self) -> FaultConfig:
        return self.emulator.faults.config

    @property
    def limits(self) -> LimitConfig:
        return self.emulator.flood_limits.config


def make_emulator(
    *, tokens: Iterable[str] | None = None, keep: int = DEFAULT_KEEP, **options: Any
) -> Emulator:
    """An emulator of `run_emulator`'s options (`options.configs`), not served."""
    limits, faults = configs(options)
    return Emulator(tokens=tokens, limits=limits, faults=faults, keep=keep)


@asynccontextmanager
async def run_emulator(
    *, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> AsyncIterator[EmulatorHandle]:
    """Serve an emulator on a free port for the duration of the block.

    Options: `tokens`, `limits` (False turns every rate limit off), `per_chat_per_second`,
    `per_group_per_minute`, `global_per_second`, `keep` (messages and requests kept, the
    oldest dropped first), and the fault settings of `set_faults`.
    """
    emulator = make_emulator(**options)
    runner, base_url = await start(emulator, host, port)
    try:
        yield EmulatorHandle(emulator, base_url)
    finally:
        await runner.cleanup()


__all__ = ["EmulatorHandle", "make_emulator", "run_emulator"]
