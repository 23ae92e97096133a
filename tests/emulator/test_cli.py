"""`herald emulator` as a subprocess: it prints its URL, serves, and stops on a signal."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiogram.exceptions import TelegramServerError

from herald.emulator.options import DEFAULT_KEEP, FaultConfig, LimitConfig
from herald.emulator.remote import RemoteEmulator
from herald.emulator.server import configs_of, parse_args
from herald.emulator.testing import make_emulator
from tests.emulator.conftest import make_bot
from tests.support.processes import emulator_process, herald_env, run_herald


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_standalone_serves_and_stops_cleanly(sig: signal.Signals, tmp_path: Path) -> None:
    flags: Sequence[str] = ("--fault-500", "1", "--seed", "5")
    with emulator_process(tmp_path, *flags, env=herald_env()) as (process, base_url):
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
        assert process.stop(sig, timeout=10) == 0


def test_refuses_fault_rates_over_one(tmp_path: Path) -> None:
    args = ["emulator", "--port", "0", "--fault-429", "0.7", "--fault-500", "0.7"]
    result = run_herald(args, herald_env(), tmp_path, timeout=20)
    assert result.returncode == 2
    assert "fault rates must add up to at most 1" in result.stderr


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
