"""`herald emulator`: serve the Telegram Bot API emulator until SIGTERM or SIGINT.

    herald emulator --port 8081 [--no-limits] [--fault-429 0.1 --seed 7]

Prints `Telegram emulator listening on http://HOST:PORT` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from herald.emulator.app import start
from herald.emulator.options import OptionError
from herald.emulator.testing import make_emulator


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="herald emulator", description="Run the Telegram Bot API emulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument(
        "--token",
        action="append",
        dest="tokens",
        help="accept only this bot token (repeatable); default: any token of Telegram's form",
    )
    limits = parser.add_argument_group("rate limits (Telegram's by default)")
    limits.add_argument("--no-limits", action="store_true", help="turn every rate limit off")
    limits.add_argument("--per-chat-per-second", type=float, default=1.0)
    limits.add_argument("--per-group-per-minute", type=float, default=20.0)
    limits.add_argument("--global-per-second", type=float, default=30.0)
    faults = parser.add_argument_group("fault injection (shares of send requests)")
    for name in ("429", "500", "502", "proxy-502", "timeout", "drop", "garbage", "mistyped"):
        faults.add_argument(f"--fault-{name}", type=float, default=0.0, metavar="RATE")
    faults.add_argument("--retry-after", type=int, default=1, help="retry_after of a 429 fault")
    faults.add_argument("--timeout-seconds", type=float, default=15.0, help="delay of a timeout")
    faults.add_argument("--seed", type=int, default=None)
    return parser.parse_args(list(argv))


async def serve(args: argparse.Namespace) -> None:
    emulator = make_emulator(
        tokens=args.tokens,
        limits=not args.no_limits,
        per_chat_per_second=args.per_chat_per_second,
        per_group_per_minute=args.per_group_per_minute,
        global_per_second=args.global_per_second,
        rate_429=args.fault_429,
        rate_500=args.fault_500,
        rate_502=args.fault_502,
        rate_proxy_502=args.fault_proxy_502,
        rate_timeout=args.fault_timeout,
        rate_drop=args.fault_drop,
        rate_garbage=args.fault_garbage,
        rate_mistyped=args.fault_mistyped,
        retry_after=args.retry_after,
        timeout_seconds=args.timeout_seconds,
        seed=args.seed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner, base_url = await start(emulator, args.host, args.port)
    print(f"Telegram emulator listening on {base_url}", flush=True)
    print(f"Messages page: {base_url}/", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        run = asyncio.run
    else:
        run = uvloop.run
    try:
        run(serve(args))
    except OptionError as exc:
        print(f"herald emulator: {exc}", file=sys.stderr)
        return 2
    return 0
