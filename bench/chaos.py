"""Chaos harness: Herald's exactly-once promise under the faults production meets.

    .venv/bin/python bench/chaos.py [--tasks 3000] [--workers 2] [--kill-every 3] [--json out.json]

What it runs, all in subprocesses on this machine: a PostgreSQL cluster and a redis-server
of its own (never the shared ones), `herald emulator` injecting 429, 500, 502, timeouts and
drop-after-receive, `herald api`, and `--workers` separate `herald worker` processes.
Producers POST every task through the gateway, retrying on any failure with the same
Idempotency-Key, as a real producer would. Meanwhile:
- one worker (its whole process group) is SIGKILLed every `--kill-every` seconds and
  started again;
- Redis is killed and restarted once (a third of the way through intake: the queue is lost);
- PostgreSQL is crashed (`pg_ctl stop -m immediate`) and restarted once (two thirds through).

Once every task is created and at least `--min-kills` kills happened, the kills stop and
the harness waits for the drain (no task `pending` or `sending`), then reads the
emulator's request log and the database:
- duplicates: a task whose text reached the emulator's chat more than once;
- losses: a task never created, still not final, or `delivered` with no message in the
  emulator (or with another message_id than the emulator gave);
- uncertain tasks, each explained by the ambiguous event that caused it: its last claim
  belonged to a worker process that was SIGKILLed (a kill mid-send), or the last request
  for the task met a 5xx, a timeout or a dropped connection. Any other is "unexplained".
  The tasks the sweeper returned to pending because their send gate was still closed (a
  kill while waiting for a rate-limit slot) are counted too;
- the converse: a task whose last request met an ambiguous fault must be uncertain (had
  it been sent again, the emulator would show a later request).
Exit status 0 when there are no duplicates, no losses, no unexplained uncertain task and
no ambiguous fault that was not held as uncertain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).parent))
from stack import JWT_SECRET, Proc, Stack

from herald.api.auth import mint_token
from herald.config import Settings

AMBIGUOUS_FAULTS = frozenset({"fault_500", "fault_502", "fault_timeout", "fault_drop"})
FINAL = frozenset({"delivered", "failed", "cancelled", "uncertain"})
_TAG = re.compile(r"chaos (\w+) #(\d+)")
_OWNER_PID = re.compile(r"worker:[^:]*:(\d+):")


@dataclass
class Config:
    tasks: int = 3000
    workers: int = 2
    kill_every: float = 4.0
    min_kills: int = 3
    producers: int = 16
    chats: int = 200
    rate_429: float = 0.03
    rate_500: float = 0.01
    rate_502: float = 0.01
    rate_timeout: float = 0.01
    rate_drop: float = 0.01
    seed: int = 7
    # The workers' shared limit on sends per second (HERALD_RATE_GLOBAL_PER_SECOND).
    rate: float = 100.0
    drain_timeout: float = 120.0


@dataclass
class Events:
    """What the harness did, with times in seconds since the start."""

    kills: list[dict[str, Any]] = field(default_factory=list)
    redis_restarts: list[float] = field(default_factory=list)
    postgres_restarts: list[float] = field(default_factory=list)
    producer_retries: int = 0
    producer_errors: Counter[str] = field(default_factory=Counter)
    # (seconds since start, what) of each failed intake attempt, to set against the faults.
    producer_error_times: list[tuple[float, str]] = field(default_factory=list)
    # (answered at, seconds, status) of intake requests slower than 2 s.
    slow_requests: list[tuple[float, float, int]] = field(default_factory=list)
    intake_seconds: float = 0.0
    drain_seconds: float = 0.0


class Harness:
    def __init__(self, stack: Stack, config: Config) -> None:
        self.stack = stack
        self.config = config
        self.events = Events()
        self.start = time.monotonic()
        self.created = 0
        self.intake_done = asyncio.Event()
        self.drained = asyncio.Event()
        self.milestones: dict[int, asyncio.Event] = {}
        self.killed_pids: set[int] = set()
        self.workers: list[Proc] = []
        self.worker_starts = 0
        self.env: dict[str, str] = {}
        self.api_url = ""
        self.emulator_url = ""
        self.token = ""

    def extra_env(self) -> dict[str, Any]:
        """More settings for every `herald` process of the run (bench/callbacks_chaos.py)."""
        return {}

    def now(self) -> float:
        return round(time.monotonic() - self.start, 2)

    def boot(self) -> None:
        c = self.config
        self.stack.start_infra()
        _, self.emulator_url = self.stack.start_emulator(
            "--no-limits",
            "--fault-429", str(c.rate_429),
            "--fault-500", str(c.rate_500),
            "--fault-502", str(c.rate_502),
            "--fault-timeout", str(c.rate_timeout),
            "--fault-drop", str(c.rate_drop),
            "--timeout-seconds", "4",
            "--seed", str(c.seed),
            # Every request and message of the run, for the accounting (default: 10,000).
            "--keep", str(max(100_000, 20 * c.tasks)),
        )  # fmt: skip
        self.env = self.stack.herald_env(
            telegram_api_url=self.emulator_url,
            telegram_timeout=2.0,  # the emulator's timeouts last 4 s: always past it
            lease_seconds=5.0,  # a killed worker's claims turn uncertain quickly
            requeue_after_seconds=3.0,
            sweep_interval_seconds=0.5,
            backoff_base_seconds=0.2,
            backoff_max_seconds=2.0,
            max_attempts=20,  # certain failures (connection refused) retry, never give up
            rate_global_per_second=c.rate,
            rate_chat_per_second=0,
            rate_group_per_minute=0,
            **self.extra_env(),
        )
        self.stack.migrate(self.env)
        _, self.api_url = self.stack.start_api(self.env)
        for i in range(c.workers):
            self.workers.append(self._start_worker(i))
        settings = Settings(_env_file=None, jwt_secret=JWT_SECRET)  # type: ignore[call-arg]
        self.token = mint_token(settings, "chaos", ["tasks:write"], ttl=3600)

    # --- producers ---------------------------------------------------------------------

    async def produce(self) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(self.config.tasks):
            queue.put_nowait(n)
        limits = httpx.Limits(max_connections=self.config.producers)
        async with httpx.AsyncClient(base_url=self.api_url, limits=limits, timeout=60) as client:
            await asyncio.gather(
                *(self._producer(client, queue) for _ in range(self.config.producers))
            )
        self.events.intake_seconds = self.now()
        self.intake_done.set()

    async def _producer(self, client: httpx.AsyncClient, queue: asyncio.Queue[int]) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            body = {
                "chat_id": 1000 + n % self.config.chats,
                "text": f"chaos {self.stack.run_id} #{n}",
            }
            headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": f"chaos-{n}"}
            delay = 0.1
            while True:
                started = time.monotonic()
                try:
                    response = await client.post("/api/tasks", json=body, headers=headers)
                except httpx.HTTPError as exc:
                    self._producer_error(type(exc).__name__)
                else:
                    if time.monotonic() - started > 2:
                        self.events.slow_requests.append(
                            (self.now(), round(time.monotonic() - started, 1), response.status_code)
                        )
                    if response.status_code in (200, 201):
                        break
                    self._producer_error(str(response.status_code))
                    if 400 <= response.status_code < 500 and response.status_code != 429:
                        raise RuntimeError(f"task {n} refused: {response.text}")
                # A producer retries with the same key: the gateway must make it one task.
                self.events.producer_retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            self.created += 1
            for count, event in self.milestones.items():
                if self.created >= count:
                    event.set()

    async def reached(self, count: int) -> None:
        """Wait until `count` tasks were created."""
        event = self.milestones.setdefault(count, asyncio.Event())
        if self.created >= count:
            event.set()
        await event.wait()

    def _producer_error(self, what: str) -> None:
        self.events.producer_errors[what] += 1
        self.events.producer_error_times.append((self.now(), what))

    # --- faults ------------------------------------------------------------------------

    def _start_worker(self, i: int) -> Proc:
        self.worker_starts += 1
        # At INFO, so that the log says when the receiver listens.
        env = {**self.env, "HERALD_LOG_LEVEL": "INFO"}
        return self.stack.start_worker(f"worker-{i}.{self.worker_starts}", env)

    def _listening(self) -> list[int]:
        """Indexes of the workers whose taskiq receiver is up (they can take messages)."""
        return [
            i
            for i, worker in enumerate(self.workers)
            if worker.alive() and "Listening started" in worker.log_path.read_text()
        ]

    async def wait_workers_up(self) -> None:
        while len(self._listening()) < len(self.workers):  # noqa: ASYNC110 - polls log files
            await asyncio.sleep(0.1)

    async def kill_workers(self) -> None:
        """Every `kill_every` seconds, SIGKILL a running worker's process group and start it
        again: until every task is created and at least `min_kills` kills happened.

        The victim is a worker that is up (killing one still importing proves nothing),
        preferably one that holds a claim right now (a task in `sending` under its lease),
        looked for during up to a second: crashes strike at any moment, and the moment
        that matters is the one between claim and record.
        """
        conn: Any = None
        try:
            while not self.drained.is_set():
                try:
                    await asyncio.wait_for(self.drained.wait(), self.config.kill_every)
                    return
                except TimeoutError:
                    pass
                if self.intake_done.is_set() and len(self.events.kills) >= self.config.min_kills:
                    return
                while not (up := self._listening()):
                    if self.drained.is_set():
                        return
                    await asyncio.sleep(0.1)
                conn, busy = await self._busy_worker(conn, up)
                i = up[0] if busy is None else busy
                old = self.workers[i]
                pids = old.kill()
                await asyncio.to_thread(old.popen.wait)
                self.killed_pids.update(pids)
                self.workers[i] = self._start_worker(i)
                self.events.kills.append(
                    {"at": self.now(), "worker": i, "pids": pids, "holding_claim": busy is not None}
                )
        finally:
            if conn is not None:
                await conn.close()

    async def _busy_worker(self, conn: Any, up: list[int]) -> tuple[Any, int | None]:
        """(connection, index among `up` of a worker holding a `sending` lease, or None)."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(self.stack.database_url.replace("+asyncpg", ""))
                owners = await conn.fetch(
                    "SELECT DISTINCT lease_owner FROM tasks WHERE status = 'sending'"
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return None, None  # PostgreSQL is restarting: take any worker
            for row in owners:
                found = _OWNER_PID.match(row["lease_owner"] or "")
                if found is None:
                    continue
                pid = int(found.group(1))
                for i in up:
                    if pid in self.workers[i].pids():
                        return conn, i
            await asyncio.sleep(0.01)
        return conn, None

    async def restart_backends(self) -> None:
        total = self.config.tasks
        await self.reached(total // 3)
        await asyncio.to_thread(self.stack.redis.restart)
        self.events.redis_restarts.append(self.now())
        await self.reached(2 * total // 3)
        await asyncio.to_thread(self.stack.postgres.restart, "immediate")
        self.events.postgres_restarts.append(self.now())

    # --- drain and accounting ----------------------------------------------------------

    async def drain(self, conn: Any) -> dict[str, int]:
        started = time.monotonic()
        while True:
            rows = await conn.fetch("SELECT status, count(*) AS n FROM tasks GROUP BY status")
            counts = {r["status"]: r["n"] for r in rows}
            open_ = sum(n for s, n in counts.items() if s not in FINAL)
            if open_ == 0 or time.monotonic() - started > self.config.drain_timeout:
                self.events.drain_seconds = round(time.monotonic() - started, 2)
                return counts
            await asyncio.sleep(0.5)

    async def run(self) -> dict[str, Any]:
        await asyncio.wait_for(self.wait_workers_up(), 120)
        self.start = time.monotonic()
        killer = asyncio.create_task(self.kill_workers())
        await asyncio.gather(self.produce(), self.restart_backends())
        dsn = self.stack.database_url.replace("+asyncpg", "")
        conn = await asyncpg.connect(dsn)
        try:
            counts = await self.drain(conn)
            self.drained.set()
            await killer
            tasks = await conn.fetch(
                "SELECT id, idempotency_key, chat_id, status, telegram_message_id, attempt,"
                " last_error FROM tasks"
            )
            events = await conn.fetch(
                "SELECT task_id, actor, to_status, attempt, reason FROM task_events ORDER BY id"
            )
        finally:
            await conn.close()
        async with httpx.AsyncClient(base_url=self.emulator_url, timeout=60) as client:
            messages = (await client.get("/control/messages")).json()["messages"]
            received = (await client.get("/control/received")).json()["received"]
        return self.account(counts, tasks, events, messages, received)

    def account(
        self,
        counts: dict[str, int],
        tasks: list[Any],
        events: list[Any],
        messages: list[dict[str, Any]],
        received: list[dict[str, Any]],
    ) -> dict[str, Any]:
        run_id = self.stack.run_id

        def tag(text: Any) -> int | None:
            found = _TAG.fullmatch(str(text))
            return int(found.group(2)) if found and found.group(1) == run_id else None

        delivered_to: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for m in messages:
            n = tag(m.get("text"))
            if n is not None:
                delivered_to[n].append(m)
        last_request: dict[int, str] = {}
        outcomes: Counter[str] = Counter()
        for r in received:
            if r.get("method", "").lower() != "sendmessage":
                continue
            outcomes[r["outcome"]] += 1
            n = tag(r["params"].get("text"))
            if n is not None:
                last_request[n] = r["outcome"]
        last_claim: dict[int, str] = {}
        lease_expired: set[int] = set()  # made uncertain by the sweeper, not by its worker
        returned_before_send: set[int] = set()  # the sweeper took the send gate
        for e in events:
            if e["to_status"] == "sending":
                last_claim[e["task_id"]] = e["actor"]
            elif e["to_status"] == "uncertain" and e["actor"] == "sweeper":
                lease_expired.add(e["task_id"])
            elif e["reason"] == "lease expired before the send":
                returned_before_send.add(e["task_id"])

        by_key = {int(t["idempotency_key"].removeprefix("chaos-")): t for t in tasks}
        never_created = sorted(set(range(self.config.tasks)) - set(by_key))
        duplicates = {n: len(ms) for n, ms in delivered_to.items() if len(ms) > 1}
        not_final = sorted(n for n, t in by_key.items() if t["status"] not in FINAL)
        delivered_without_message = []
        wrong_message_id = []
        uncertain: Counter[str] = Counter()
        unexplained: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        ambiguous_not_held: list[int] = []
        for n, t in sorted(by_key.items()):
            got = delivered_to.get(n, [])
            if t["status"] == "delivered":
                if not got:
                    delivered_without_message.append(n)
                elif got[0]["message_id"] != t["telegram_message_id"]:
                    wrong_message_id.append(n)
            if last_request.get(n) in AMBIGUOUS_FAULTS and t["status"] != "uncertain":
                ambiguous_not_held.append(n)
            if t["status"] == "failed":
                failed.append({"task": n, "error": t["last_error"]})
            elif t["status"] == "uncertain":
                cause = self._uncertain_cause(n, t, last_request, last_claim, lease_expired)
                if cause == "worker_killed_mid_send":
                    # Killed after its claim: before its request (never reached the
                    # emulator), or with it in flight (the message may have arrived).
                    if got:
                        cause += "_delivered"
                    else:
                        cause += "_not_delivered" if n in last_request else "_never_requested"
                uncertain[cause] += 1
                if cause == "unexplained":
                    unexplained.append(
                        {"task": n, "id": t["id"], "messages": len(got),
                         "last_request": last_request.get(n), "claimed_by": last_claim.get(t["id"]),
                         "error": t["last_error"]}
                    )  # fmt: skip
        losses = len(never_created) + len(not_final) + len(delivered_without_message)
        losses += len(wrong_message_id)
        report = {
            "config": asdict(self.config),
            "run_id": run_id,
            "statuses": counts,
            "tasks_in_db": len(tasks),
            "emulator": {
                "send_requests": sum(outcomes.values()),
                "outcomes": dict(outcomes),
                "messages_accepted": len(messages),
            },
            "injected": {
                "ambiguous_faults": sum(outcomes[f] for f in AMBIGUOUS_FAULTS),
                "worker_kills": len(self.events.kills),
                "worker_kills_holding_a_claim": sum(k["holding_claim"] for k in self.events.kills),
                "worker_processes_killed": len(self.killed_pids),
                "redis_restarts": len(self.events.redis_restarts),
                "postgres_restarts": len(self.events.postgres_restarts),
            },
            "events": {
                "kills_at": [k["at"] for k in self.events.kills],
                "redis_restarted_at": self.events.redis_restarts,
                "postgres_restarted_at": self.events.postgres_restarts,
                "intake_seconds": self.events.intake_seconds,
                "drain_seconds": self.events.drain_seconds,
                "producer_retries": self.events.producer_retries,
                "producer_errors": dict(self.events.producer_errors),
                "producer_error_times": self.events.producer_error_times,
                "slow_requests": self.events.slow_requests,
            },
            "duplicates": len(duplicates),
            "duplicate_tasks": sorted(duplicates)[:20],
            "losses": losses,
            "loss_detail": {
                "never_created": never_created[:20],
                "not_final": not_final[:20],
                "delivered_without_message": delivered_without_message[:20],
                "wrong_message_id": wrong_message_id[:20],
            },
            "uncertain": sum(uncertain.values()),
            "uncertain_by_cause": dict(uncertain),
            "returned_before_send": len(returned_before_send),
            "unexplained_uncertain": unexplained[:20],
            "ambiguous_not_held": ambiguous_not_held[:20],
            "failed": len(failed),
            "failed_detail": failed[:20],
        }
        report["ok"] = (
            report["duplicates"] == 0 and losses == 0 and not unexplained and not ambiguous_not_held
        )
        return report

    def _uncertain_cause(
        self,
        n: int,
        task: Any,
        last_request: dict[int, str],
        last_claim: dict[int, str],
        lease_expired: set[int],
    ) -> str:
        # The sweeper took over from a worker that was killed holding the claim: that
        # worker never recorded Telegram's answer, whatever it was.
        owner = _OWNER_PID.match(last_claim.get(task["id"], ""))
        if task["id"] in lease_expired and owner and int(owner.group(1)) in self.killed_pids:
            return "worker_killed_mid_send"
        if last_request.get(n) in AMBIGUOUS_FAULTS:
            return str(last_request[n])
        return "unexplained"


def summary(report: dict[str, Any]) -> str:
    inj, em = report["injected"], report["emulator"]
    lines = [
        f"tasks: {report['config']['tasks']}, in the database: {report['tasks_in_db']}, "
        f"statuses: {report['statuses']}",
        f"emulator: {em['send_requests']} sendMessage requests {em['outcomes']}, "
        f"{em['messages_accepted']} messages accepted",
        f"injected: {inj['ambiguous_faults']} ambiguous faults, {inj['worker_kills']} worker "
        f"kills ({inj['worker_kills_holding_a_claim']} of a worker holding a claim, "
        f"{inj['worker_processes_killed']} processes), Redis restarted "
        f"{inj['redis_restarts']}x, PostgreSQL crashed and restarted {inj['postgres_restarts']}x",
        f"producer retries: {report['events']['producer_retries']} "
        f"{report['events']['producer_errors']}; intake {report['events']['intake_seconds']} s, "
        f"drain {report['events']['drain_seconds']} s",
        f"duplicates: {report['duplicates']}   losses: {report['losses']}   "
        f"uncertain: {report['uncertain']} {report['uncertain_by_cause']}   "
        f"failed: {report['failed']}",
        f"claims of killed workers returned to pending before their send (send gate): "
        f"{report['returned_before_send']}",
        "RESULT: " + ("ok" if report["ok"] else "FAILED"),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = Config()
    parser.add_argument("--tasks", type=int, default=defaults.tasks)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--kill-every", type=float, default=defaults.kill_every)
    parser.add_argument("--min-kills", type=int, default=defaults.min_kills)
    parser.add_argument("--producers", type=int, default=defaults.producers)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, help="workers' global sends/s (0: off)"
    )
    parser.add_argument("--drain-timeout", type=float, default=defaults.drain_timeout)
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers must be at least 2: one is always being killed")
    config = Config(
        tasks=args.tasks,
        workers=args.workers,
        kill_every=args.kill_every,
        min_kills=args.min_kills,
        producers=args.producers,
        seed=args.seed,
        rate=args.rate,
        drain_timeout=args.drain_timeout,
    )
    return config, args


def main(
    argv: list[str] | None = None,
    *,
    harness: Callable[[Stack, Config], Harness] = Harness,
    name: str = "chaos",
    describe: Callable[[dict[str, Any]], str] = summary,
) -> int:
    """Run `harness` (bench/callbacks_chaos.py passes its own), print `describe(report)`."""
    config, args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix=f"herald-{name}-"))
    with Stack(root) as stack:
        run = harness(stack, config)
        run.boot()
        report = asyncio.run(run.run())
    report["logs"] = str(root) if args.keep else None
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    print(describe(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
