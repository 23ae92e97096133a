"""How many sendMessage/s the Telegram emulator answers, limits and faults off.

    .venv/bin/python bench/emulator_throughput.py [--seconds 10] [--connections 64]

Starts `herald emulator --no-limits` as its own process (uvloop, as `herald dev` and the
other benchmarks run it), then loads it twice:
1. wrk (Debian's `wrk`), a C load generator, so the number is the emulator's own;
2. aiogram's real Bot from this process, which is what Herald's workers see.
For each it prints requests/s, what the emulator recorded (every answered request must be a
logged message) and the emulator's CPU time per request, which is steadier than requests/s
on a machine shared with other work; for aiogram also the client's own CPU per request.
Finally it prints `uptime`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from herald.emulator.remote import RemoteEmulator
from tests.support.processes import Proc, start_emulator

TOKEN = "123456:bench-token"
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = "chat_id=42&text=Your+order+1234+has+shipped"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
"""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _report(name: str, requests: int, seconds: float, recorded: int, cpu: float) -> None:
    rate = requests / seconds
    per_request = cpu / recorded * 1e6 if recorded else float("nan")
    print(
        f"{name:<8} {rate:>8,.0f} sendMessage/s   {requests:>7,} answered, {recorded:>7,} "
        f"recorded, emulator CPU {per_request:.0f} us/request"
    )


def _run_wrk(base_url: str, seconds: int, connections: int) -> tuple[int, float, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                script.name,
                f"{base_url}/bot{TOKEN}/sendMessage",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    assert total, out
    duration = float(total.group(2)) / (1000 if total.group(3) == "ms" else 1)
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    latency = re.search(r"50%\s+(\S+).*?99%\s+(\S+)", out, re.S)
    summary = f"p50 {latency.group(1)}, p99 {latency.group(2)}" if latency else ""
    return int(total.group(1)), duration, summary


async def _run_aiogram(base_url: str, seconds: float, connections: int) -> tuple[int, float]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url), limit=connections)
    bot = Bot(TOKEN, session=session)
    sent = 0
    deadline = time.monotonic() + seconds

    async def sender(chat_id: int) -> None:
        nonlocal sent
        while time.monotonic() < deadline:
            await bot.send_message(chat_id, "Your order 1234 has shipped")
            sent += 1

    started = time.monotonic()
    await asyncio.gather(*(sender(1 + c) for c in range(connections)))
    elapsed = time.monotonic() - started
    await bot.session.close()
    return sent, elapsed


async def _measure(process: Proc, base_url: str, args: argparse.Namespace) -> None:
    async with RemoteEmulator(base_url) as remote:
        if shutil.which("wrk"):
            cpu0 = _cpu_seconds(process.pid)
            answered, duration, latency = await asyncio.to_thread(
                _run_wrk, base_url, args.seconds, args.connections
            )
            cpu = _cpu_seconds(process.pid) - cpu0
            recorded = (await remote.stats())["messages"]
            _report("wrk", answered, duration, recorded, cpu)
            print(f"         latency {latency} ({args.connections} connections)")
        else:
            print("wrk not found (apt-get install -y wrk): skipping the wrk run")
        await remote.reset()
        cpu0, client0 = _cpu_seconds(process.pid), time.process_time()
        sent, elapsed = await _run_aiogram(base_url, args.seconds, args.connections)
        cpu, client = _cpu_seconds(process.pid) - cpu0, time.process_time() - client0
        recorded = (await remote.stats())["messages"]
        _report("aiogram", sent, elapsed, recorded, cpu)
        print(f"         aiogram's own CPU {client / sent * 1e6:.0f} us/request (this process)")
        if recorded != sent:
            raise SystemExit(f"the emulator recorded {recorded} messages for {sent} sent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process, base_url = start_emulator(Path(tmp), "--no-limits")
        try:
            asyncio.run(_measure(process, base_url, args))
        finally:
            process.stop(timeout=10)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
