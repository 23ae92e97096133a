"""Instructions per item of batch intake's Python, counted by callgrind (load-independent).

    .venv/bin/python bench/batch_instructions.py [--checkout DIR] [--batches 4]

Wall-clock rates on a shared machine move by a tenth from run to run; instruction counts
do not. This runs itself under `valgrind --tool=callgrind` with collection off, and
switches it on (`callgrind_control`) around each phase of a 500-item batch: validating
the items, building their `NewTask`s, writing the batch's JSON document (the insert's
client side; the pool is a stand-in that returns no rows, so nothing reaches PostgreSQL).
`--checkout` measures another checkout's `src` (an older commit, say) with this venv.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("validate", "build", "write")
ITEMS = 500


def child(batches: int) -> None:
    import orjson

    from herald.api.routes import intake as routes
    from herald.api.schemas import BatchIn, BatchItem
    from herald.db import intake

    body = orjson.dumps(
        {
            "items": [
                {"idempotency_key": f"k-{i}", "chat_id": 1000 + i % 50, "text": "Shipped"}
                for i in range(ITEMS)
            ]
        }
    )

    class NoRows:
        async def fetch(self, query: str, *args: Any) -> list[Any]:
            return []

    loop = asyncio.new_event_loop()
    state: dict[str, Any] = {}

    def validate() -> None:
        state["items"] = [
            BatchItem.model_validate(r) for r in BatchIn.model_validate_json(body).items
        ]

    def build() -> None:
        state["new"] = [routes._new_task(i, i.idempotency_key, 5) for i in state["items"]]

    def write() -> None:
        loop.run_until_complete(intake.insert_tasks(NoRows(), "c", state["new"], None, "a"))  # type: ignore[arg-type]

    steps = {"validate": validate, "build": build, "write": write}
    for step in steps.values():  # warm up: every code path once
        step()
    pid = str(os.getpid())

    def control(*args: str) -> None:
        subprocess.run(["callgrind_control", *args, pid], stdout=subprocess.DEVNULL, check=True)

    for name in PHASES:
        control("--zero")
        control("--instr=on")
        for _ in range(batches):
            steps[name]()
        control("--instr=off")
        control(f"--dump={name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkout", type=Path, default=ROOT)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.batches)
        return
    checkout = args.checkout.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = os.environ | {
            "PYTHONHASHSEED": "0",
            "PYTHONPATH": f"{checkout / 'src'}:{checkout}",
        }
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                "--batches",
                str(args.batches),
            ],
            env=env,
            cwd=checkout,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(f"{checkout}: instructions per item, {args.batches} batches of {ITEMS}")
        for n, name in enumerate(PHASES, 1):
            totals = next(
                line
                for line in Path(f"{out}.{n}").read_text().splitlines()
                if line.startswith("totals:")
            )
            print(f"  {name:9} {int(totals.split()[1]) // (args.batches * ITEMS):>8,}")


if __name__ == "__main__":
    main()
