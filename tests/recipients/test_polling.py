"""`herald poll`: getUpdates with the offset kept in PostgreSQL. A poller killed between
getUpdates and the store loses nothing (Telegram hands the unconfirmed updates out again);
one killed after the store repeats nothing (the offset moved in the same commit)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from herald.db.updates import read_offset
from tests.conftest import REDIS_URL
from tests.delivery.conftest import StartWorker
from tests.recipients.conftest import BOT_ID, Herald, eventually
from tests.support.processes import HERALD, Proc, herald_env, spawn

USER = 6001


def _poller(herald: Herald, log_dir: Path, name: str, **settings: object) -> Proc:
    env = herald_env(
        database_url=herald.settings.database_url,
        redis_url=REDIS_URL,
        queue_name=herald.settings.queue_name,
        bot_token=herald.settings.bot_token,
        telegram_api_url=herald.tg.base_url,
        poll_timeout_seconds=1,
        log_json="false",
        **settings,
    )
    return spawn(name, [HERALD, "poll"], log_dir, env)


async def _exit_code(proc: Proc, within: float = 30.0) -> int:
    deadline = time.monotonic() + within
    while proc.alive():
        assert time.monotonic() < deadline, proc.log()[-2000:]
        await asyncio.sleep(0.1)
    return proc.popen.returncode


async def _stored(herald: Herald) -> list[int]:
    rows = await herald.pool.fetch("SELECT update_id FROM telegram_updates ORDER BY update_id")
    return [r["update_id"] for r in rows]


async def test_polling_survives_restarts_with_no_update_lost_or_repeated(
    herald: Herald, tmp_path: Path
) -> None:
    sent = [herald.tg.user_send(USER, f"m{i}", bot_id=BOT_ID)["update_id"] for i in range(3)]

    # Killed between getUpdates and the store (the test hook exits right there).
    crashed = _poller(herald, tmp_path, "crash", poll_crash_after_fetch="true")
    assert await _exit_code(crashed) == 3
    assert await _stored(herald) == []
    assert [u["update_id"] for u in herald.tg.updates(BOT_ID)["pending"]] == sent

    poller = _poller(herald, tmp_path, "poll-1")
    try:
        await eventually(lambda: _has(herald, sent), within=30)
        sent += [herald.tg.user_send(USER, f"n{i}", bot_id=BOT_ID)["update_id"] for i in range(2)]
        await eventually(lambda: _has(herald, sent), within=30)
    finally:
        poller.kill()  # SIGKILL: no goodbye
        await _exit_code(poller)
    assert await read_offset(herald.pool, BOT_ID) == sent[-1] + 1

    sent.append(herald.tg.user_send(USER, "after the kill", bot_id=BOT_ID)["update_id"])
    poller = _poller(herald, tmp_path, "poll-2")
    try:
        await eventually(lambda: _has(herald, sent), within=30)
        # Its next getUpdates confirms the last one: Telegram keeps nothing back.
        await eventually(lambda: _confirmed(herald), within=30)
    finally:
        poller.stop()
    assert await _stored(herald) == sent  # each once, none lost
    texts = await herald.pool.fetch(
        "SELECT payload->'message'->>'text' AS text FROM telegram_updates ORDER BY update_id"
    )
    assert [r["text"] for r in texts] == ["m0", "m1", "m2", "n0", "n1", "after the kill"]


async def _has(herald: Herald, update_ids: list[int]) -> bool:
    return await _stored(herald) == update_ids


async def _confirmed(herald: Herald) -> bool:
    return herald.tg.updates(BOT_ID)["pending"] == []


async def test_a_start_taken_by_polling_binds_and_welcomes(herald: Herald, tmp_path: Path) -> None:
    code = await herald.link("gina")
    herald.tg.user_start(USER, code, bot_id=BOT_ID)
    poller = _poller(herald, tmp_path, "poll")
    try:
        await eventually(lambda: herald.recipient("gina"), within=30)
    finally:
        poller.stop()
    await herald.deliver()
    assert len(herald.tg.messages(USER)) == 1


async def _poll_lock(herald: Herald) -> list[tuple[int, bool]]:
    """(pid of the process, granted) of each connection holding or awaiting the poll lock."""
    rows = await herald.pool.fetch(
        "SELECT a.application_name, l.granted FROM pg_locks l"
        " JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND a.datname = current_database()"
        "   AND a.application_name LIKE 'herald poll %'"
    )
    return sorted((int(r["application_name"].split()[2].split("@")[0]), r["granted"]) for r in rows)


async def _holder(herald: Herald, not_pid: int = 0) -> int | None:
    """The pid of the process holding the poll lock (not `not_pid`) while one more waits."""
    lock = await _poll_lock(herald)
    held = [pid for pid, granted in lock if granted]
    if len(held) == 1 and len(lock) == 2 and held[0] != not_pid:
        return held[0]
    return None


def _polls(herald: Herald) -> int:
    return sum(1 for r in herald.tg.received if r["method"].lower() == "getupdates")


async def test_workers_poll_one_at_a_time_and_the_next_takes_over(
    herald: Herald, start_worker: StartWorker
) -> None:
    worker = await start_worker(workers=2, poll_updates="true", poll_timeout_seconds=1)
    processes = await worker.pids()
    polling = await eventually(lambda: _holder(herald), within=30)
    assert polling in processes  # one worker process polls, the other waits its turn

    sent = [herald.tg.user_send(USER, f"m{i}", bot_id=BOT_ID)["update_id"] for i in range(3)]
    await eventually(lambda: _has(herald, sent), within=30)
    # Long polls of 1 s, one after the other: a second poller would end the first's (409).
    polls = _polls(herald)
    await eventually(lambda: asyncio.sleep(0, _polls(herald) >= polls + 2))
    assert herald.tg.updates(BOT_ID)["conflicts"] == 0

    os.kill(polling, signal.SIGKILL)
    sent += [herald.tg.user_send(USER, f"n{i}", bot_id=BOT_ID)["update_id"] for i in range(3)]
    successor = await eventually(lambda: _holder(herald, not_pid=polling), within=30)
    assert successor in processes  # the one that was waiting
    await eventually(lambda: _has(herald, sent), within=30)  # each once, none lost
    # The killed process's last long poll may still be open in the emulator: the
    # successor's first getUpdates ends it. From then on, one poller again.
    conflicts = herald.tg.updates(BOT_ID)["conflicts"]
    polls = _polls(herald)
    await eventually(lambda: asyncio.sleep(0, _polls(herald) >= polls + 2))
    assert herald.tg.updates(BOT_ID)["conflicts"] == conflicts <= 1
