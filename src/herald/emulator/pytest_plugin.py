"""pytest fixture `telegram_emulator`: one emulator per test session, reset for each test.

Enable with `pytest_plugins = ["herald.emulator.pytest_plugin"]`. Rate limits are off
(fast tests); a test that wants them calls `telegram_emulator.set_limits(...)`, and the
reset before the next test turns them off again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from herald.emulator.testing import EmulatorHandle, run_emulator


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _telegram_emulator_session() -> AsyncIterator[EmulatorHandle]:
    async with run_emulator(limits=False) as handle:
        yield handle


@pytest_asyncio.fixture(loop_scope="session")
async def telegram_emulator(
    _telegram_emulator_session: EmulatorHandle,
) -> AsyncIterator[EmulatorHandle]:
    _telegram_emulator_session.reset()
    yield _telegram_emulator_session
    _telegram_emulator_session.reset()
