"""A worker's logs scale: at INFO a summary per interval, not a line per message."""

from __future__ import annotations

import json
import signal
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from herald.emulator.testing import EmulatorHandle
from tests.delivery.conftest import insert_task
from tests.delivery.workers import wait_for

DELIVERED, BLOCKED = 240, 60


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


async def deliver_through_a_worker(
    db: Any, tg: EmulatorHandle, start_worker: Any, enqueue: Any, level: str, **env: Any
) -> tuple[list[dict[str, Any]], float]:
    """DELIVERED tasks delivered and BLOCKED failed (403) by one worker process logging JSON
    at `level`; its log records, and the seconds it ran."""
    tg.block_chat(99)
    worker = await start_worker(log_json=True, log_level=level, worker_summary_seconds=1, **env)
    ids = [await insert_task(db, chat_id=3000 + i % 50, text=f"m{i}") for i in range(DELIVERED)]
    ids += [await insert_task(db, chat_id=99, text=f"b{i}") for i in range(BLOCKED)]
    await enqueue(ids)

    async def all_final() -> bool:
        n = await db.fetchval("SELECT count(*) FROM tasks WHERE status IN ('delivered', 'failed')")
        return bool(n == DELIVERED + BLOCKED)

    await wait_for(all_final, 60, "every task final")
    await worker.stop(signal.SIGTERM)  # the last partial interval is logged on the way out
    lines = records(worker.log_path)
    ran = _seconds(lines[0]["timestamp"], lines[-1]["timestamp"])
    return lines, ran


def _seconds(first: str, last: str) -> float:
    return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()


async def test_at_info_a_worker_logs_summaries_whose_counts_equal_what_happened(
    db: Any, tg: EmulatorHandle, start_worker: Any, enqueue: Any
) -> None:
    # 100 sends/s: the 300 deliveries span several summary intervals.
    lines, ran = await deliver_through_a_worker(
        db, tg, start_worker, enqueue, "INFO", rate_global_per_second=100
    )
    events = Counter(line["event"].split(" with ID")[0] for line in lines)
    # Nothing per message: neither taskiq's line nor the pipeline's.
    assert events["Executing task herald.deliver"] == 0
    assert events["task_recorded"] == 0
    summaries = [line for line in lines if line["event"] == "worker_summary"]
    # One line a second at most (plus the last partial interval), whatever the volume.
    assert 3 <= len(summaries) <= ran + 2
    assert len(lines) < 60, Counter(line["event"] for line in lines)
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    taken = nothing_due = 0
    for summary in summaries:
        assert summary["level"] == "info"
        outcomes.update(summary["outcomes"])
        errors.update(summary["telegram_errors"])
        taken += summary["messages"]
        nothing_due += summary["nothing_due"]
        assert summary["errors"] == 0
    assert outcomes == {"delivered": DELIVERED, "failed": BLOCKED}
    assert errors == {"403": BLOCKED}
    # Every task was claimed from one message; others (a sweeper's re-hint) found nothing.
    assert taken - nothing_due == DELIVERED + BLOCKED
    assert len(tg.messages()) == DELIVERED


async def test_at_debug_the_per_message_lines_are_there_as_debug(
    db: Any, tg: EmulatorHandle, start_worker: Any, enqueue: Any
) -> None:
    lines, _ = await deliver_through_a_worker(db, tg, start_worker, enqueue, "DEBUG")
    executing = [line for line in lines if line["event"].startswith("Executing task")]
    recorded = [line for line in lines if line["event"] == "task_recorded"]
    taken = sum(line["messages"] for line in lines if line["event"] == "worker_summary")
    assert len(executing) == taken >= DELIVERED + BLOCKED
    assert len(recorded) == DELIVERED + BLOCKED
    assert {line["level"] for line in executing + recorded} == {"debug"}
