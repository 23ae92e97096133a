"""`herald webhook`: set and delete Telegram's webhook, refusing to set one without a secret."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from herald.emulator.testing import EmulatorHandle
from tests.support.processes import Finished, herald_env, run_herald

BOT_ID = 123456
TOKEN = f"{BOT_ID}:TEST-token"
SECRET = "c" * 40


async def _herald(args: list[str], env: dict[str, str], cwd: Path) -> Finished:
    # In a thread: the emulator it talks to runs on this test's event loop.
    return await asyncio.to_thread(run_herald, args, env, cwd, 120.0)


async def test_webhook_set_and_delete(tmp_path: Path, telegram_emulator: EmulatorHandle) -> None:
    url = "http://127.0.0.1:9/telegram/webhook"
    env: dict[str, Any] = herald_env(bot_token=TOKEN, telegram_api_url=telegram_emulator.base_url)
    refused = await _herald(["webhook", "set", "--url", url], env, tmp_path)
    assert refused.returncode == 2
    assert len(refused.stderr_lines) == 1
    assert "HERALD_WEBHOOK_SECRET" in refused.stderr

    done = await _herald(
        ["webhook", "set", "--url", url], {**env, "HERALD_WEBHOOK_SECRET": SECRET}, tmp_path
    )
    assert done.returncode == 0, done.stderr
    box = telegram_emulator.emulator.updates[BOT_ID]
    assert (box.webhook_url, box.secret) == (url, SECRET)
    assert box.allowed == ["message", "edited_message", "callback_query", "my_chat_member"]
    assert SECRET not in done.stdout + done.stderr

    assert (await _herald(["webhook", "delete"], env, tmp_path)).returncode == 0
    assert box.webhook_url == ""
