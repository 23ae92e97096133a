"""`herald emulator` as a subprocess: it prints its URL, serves, and stops on a signal."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
from aiogram.exceptions import TelegramServerError

from herald.emulator.options import DEFAULT_KEEP, FaultConfig, LimitConfig
from herald.emulator.remote import RemoteEmulator
from herald.emulator.server import configs_of, parse_args
from herald.emulator.testing import make_emulator
from tests.emulator.conftest import make_bot


@asynccontextmanager
async def emulator_process(
    *flags: str,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "herald.cli",
        "emulator",
        "--port",
        "0",
        *flags,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        match = re.search(r"listening on (http://\S+)", line)
        assert match, line
        yield process, match.group(1)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _stops_on(process: asyncio.subprocess.Process, sig: signal.Signals) -> int:
    process.send_signal(sig)
    return await asyncio.wait_for(process.wait(), 10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_standalone_serves_and_stops_cleanly(sig: signal.Signals) -> None:
    flags: Sequence[str] = ("--fault-500", "1", "--seed", "5")
    async with emulator_process(*flags) as (process, base_url):
        bot = make_bot(base_url)
        try:
            with pytest.raises(TelegramServerError):
                await bot.send_message(1, "x")
            async with RemoteEmulator(base_url) as remote:
                await remote.set_faults()
                await bot.send_message(1, "through")
                assert [m["text"] for m in await remote.messages(1)] == ["through"]
        finally:
            await bot.session.close()
        assert await _stops_on(process, sig) == 0


async def test_refuses_fault_rates_over_one() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "herald.cli",
        "emulator",
        "--port",
        "0",
        "--fault-429",
        "0.7",
        "--fault-500",
        "0.7",
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert b"fault rates must add up to at most 1" in stderr


def test_flags_default_to_the_options_defaults() -> None:
    """The flags' defaults are options.py's, as are run_emulator's: nothing restates them."""
    args = parse_args([])
    assert configs_of(args) == (LimitConfig(), FaultConfig())
    assert args.keep == DEFAULT_KEEP
    emulator = make_emulator()
    assert (emulator.flood_limits.config, emulator.faults.config) == configs_of(args)
    assert configs_of(parse_args(["--no-limits", "--fault-proxy-502", "0.5", "--seed", "3"])) == (
        LimitConfig(enabled=False),
        FaultConfig(rate_proxy_502=0.5, seed=3),
    )
