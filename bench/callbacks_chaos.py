"""Chaos for status callbacks: every task's final event reaches its producer, signed, in
order, with duplicates only as retries of one webhook-id, while Telegram deliveries stay
exactly once.

    .venv/bin/python bench/callbacks_chaos.py [--tasks 5000] [--workers 2] [--kill-every 3]
        [--json out.json]

bench/chaos.py's run (its own PostgreSQL and Redis, the emulator's faults, a worker
SIGKILLed every `--kill-every` seconds, Redis and PostgreSQL restarted once) with an
endpoint for the producer: bench/callback_receiver.py, answering 10% of requests with a
500, 5% not within the sender's timeout and dropping 2% of connections after reading the
body, verifying every signature with `standardwebhooks`. The retry schedule is Svix's
scaled down to seconds (`SCHEDULE`). After the tasks drain, it waits for the outbox to
drain, then checks:
- every task's last event (the one of its final state: delivered, failed or expired,
  uncertain) was answered 2xx by the receiver at least once, with a valid signature;
- no event missing: every outbox row delivered, none failed or left waiting;
- duplicates only as retries: one webhook-id per (task, seq), one body per webhook-id;
- order: each task's events were first accepted in sequence order;
- and bench/chaos.py's own accounting (no duplicate, no loss in Telegram).
Exit status 0 when all of it holds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).parent))
import chaos
from chaos import Config, Harness, summary
from delivery_common import new_webhook_secret
from stack import Stack, wait_port

from herald.devprocess import free_port

# Svix's schedule (0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) with seconds for hours,
# and more attempts: a run must end, and a 17% failure rate gives up 15 in a row never.
SCHEDULE = [0, 0.1, 0.3, 0.5, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2]
FINAL_EVENT = {
    "delivered": {"task.delivered", "task.resolved"},
    "failed": {"task.failed", "task.expired", "task.resolved"},
    "uncertain": {"task.uncertain"},
    "cancelled": {"task.cancelled"},
}


class CallbackHarness(Harness):
    def __init__(self, stack: Stack, config: Config) -> None:
        super().__init__(stack, config)
        self.secret = new_webhook_secret()
        self.received_path = stack.root / "received.jsonl"
        self.port = free_port()

    def extra_env(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/herald-events"
        return {
            "callbacks": json.dumps({"chaos": {"url": url, "secret": self.secret}}),
            "callback_retry_schedule": json.dumps(SCHEDULE),
            "callback_timeout_seconds": 1.0,
            "callback_lease_seconds": 3.0,  # a killed worker's attempts go again soon
            "callback_poll_seconds": 0.2,
        }

    def boot(self) -> None:
        self.stack.start(
            "receiver",
            [
                sys.executable, str(Path(__file__).parent / "callback_receiver.py"),
                "--port", str(self.port), "--secret", self.secret,
                "--out", str(self.received_path),
                "--rate-500", "0.10", "--rate-timeout", "0.05", "--rate-drop", "0.02",
                "--sleep", "2", "--seed", str(self.config.seed),
            ],
        )  # fmt: skip
        wait_port(self.port)
        super().boot()

    async def run(self) -> dict[str, Any]:
        report = await super().run()
        conn = await asyncpg.connect(self.stack.database_url.replace("+asyncpg", ""))
        try:
            started = time.monotonic()
            while True:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM callback_events WHERE status IN ('pending', 'sending')"
                )
                if waiting == 0 or time.monotonic() - started > self.config.drain_timeout:
                    break
                await asyncio.sleep(0.5)
            callback_drain = round(time.monotonic() - started, 2)
            tasks = await conn.fetch("SELECT id, status FROM tasks")
            events = await conn.fetch(
                "SELECT task_id, seq, type, status, attempts FROM callback_events"
            )
        finally:
            await conn.close()
        await asyncio.sleep(1)  # the receiver's last lines
        lines = [json.loads(x) for x in self.received_path.read_text().splitlines()]
        report["callbacks"] = account_callbacks(tasks, events, lines, callback_drain)
        report["ok"] = report["ok"] and report["callbacks"]["ok"]
        return report


def account_callbacks(
    tasks: list[Any], events: list[Any], lines: list[dict[str, Any]], drain: float
) -> dict[str, Any]:
    by_task: dict[int, list[Any]] = defaultdict(list)
    for e in events:
        by_task[e["task_id"]].append(e)
    accepted: dict[str, int] = Counter()  # webhook-id -> 2xx answers
    first_accepted: dict[str, int] = {}  # webhook-id -> line number of the first 2xx
    ids_of: dict[tuple[int, int], set[str]] = defaultdict(set)
    bodies_of: dict[str, set[str]] = defaultdict(set)
    fates: Counter[str] = Counter()
    unverified = 0
    for i, line in enumerate(lines):
        fates[line["fate"]] += 1
        if not line["verified"]:
            unverified += 1
            continue
        ids_of[(line["task"], line["seq"])].add(line["id"])
        bodies_of[line["id"]].add(line["body"])
        if line["fate"] == "ok":
            accepted[line["id"]] += 1
            first_accepted.setdefault(line["id"], i)

    final_missing: list[int] = []
    wrong_final_type: list[int] = []
    out_of_order: list[int] = []
    for t in tasks:
        mine = sorted(by_task.get(t["id"], []), key=lambda e: e["seq"])
        if not mine:
            final_missing.append(t["id"])
            continue
        last = mine[-1]
        if last["type"] not in FINAL_EVENT.get(t["status"], set()):
            wrong_final_type.append(t["id"])
        if not accepted.get(f"msg_{t['id']}_{last['seq']}"):
            final_missing.append(t["id"])
        order = [first_accepted.get(f"msg_{t['id']}_{e['seq']}", -1) for e in mine]
        if any(b < a for a, b in pairwise(order)):
            out_of_order.append(t["id"])
    outbox = Counter(e["status"] for e in events)
    never_accepted = [
        f"msg_{e['task_id']}_{e['seq']}"
        for e in events
        if not accepted.get(f"msg_{e['task_id']}_{e['seq']}")
    ]
    ids_per_event = [k for k, ids in ids_of.items() if len(ids) > 1]
    bodies_per_id = [k for k, bodies in bodies_of.items() if len(bodies) > 1]
    duplicates = sum(n - 1 for n in accepted.values() if n > 1)
    result = {
        "events": len(events),
        "outbox": dict(outbox),
        "attempts": sum(e["attempts"] for e in events),
        "requests": len(lines),
        "fates": dict(fates),
        "drain_seconds": drain,
        "unverified_signatures": unverified,
        "final_event_missing": len(final_missing),
        "final_event_missing_tasks": final_missing[:20],
        "wrong_final_type": wrong_final_type[:20],
        "events_never_accepted": len(never_accepted),
        "events_never_accepted_ids": never_accepted[:20],
        "duplicate_acceptances": duplicates,
        "events_with_several_ids": ids_per_event[:20],
        "ids_with_several_bodies": bodies_per_id[:20],
        "out_of_order_tasks": out_of_order[:20],
    }
    result["ok"] = (
        not final_missing
        and not wrong_final_type
        and not never_accepted
        and not ids_per_event
        and not bodies_per_id
        and not out_of_order
        and unverified == 0
        and set(outbox) <= {"delivered"}
    )
    return result


def callbacks_summary(cb: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"callbacks: {cb['events']} events, outbox {cb['outbox']}, {cb['requests']} requests"
            f" to the receiver {cb['fates']}, {cb['attempts']} attempts recorded;"
            f" outbox drained {cb['drain_seconds']} s after the tasks",
            f"final event missing: {cb['final_event_missing']}   never accepted:"
            f" {cb['events_never_accepted']}   duplicates accepted (same webhook-id):"
            f" {cb['duplicate_acceptances']}   events with several ids:"
            f" {len(cb['events_with_several_ids'])}   out of order:"
            f" {len(cb['out_of_order_tasks'])}   bad signatures: {cb['unverified_signatures']}",
            "CALLBACKS: " + ("ok" if cb["ok"] else "FAILED"),
        ]
    )


def describe(report: dict[str, Any]) -> str:
    return summary(report) + "\n" + callbacks_summary(report["callbacks"])


def main(argv: list[str] | None = None) -> int:
    # This benchmark's defaults: the 5,000 tasks and a kill every 3 s.
    defaults = ["--tasks", "5000", "--kill-every", "3"]
    given = argv if argv is not None else sys.argv[1:]
    return chaos.main(
        defaults + given, harness=CallbackHarness, name="callbacks-chaos", describe=describe
    )


if __name__ == "__main__":
    sys.exit(main())
