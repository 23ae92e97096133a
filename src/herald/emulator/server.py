"""`herald emulator`: serve the Telegram Bot API emulator until SIGTERM or SIGINT.

    HERALD_EMULATOR_TOKEN=123:abc herald emulator --port 8081 [--no-limits] [--fault-429 0.1]

Prints `Telegram emulator listening on http://HOST:PORT` once it accepts connections.
The accepted bot tokens come from the environment, never from the command line, where
every user of the machine could read them in `ps`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections.abc import Sequence

from herald.emulator.app import start
from herald.emulator.options import OptionError
from herald.emulator.records import DEFAULT_KEEP
from herald.emulator.testing import make_emulator

TOKEN_ENV = "HERALD_EMULATOR_TOKEN"
_TOKEN = re.compile(r"\d+:\S+")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="herald emulator", description="Run the Telegram Bot API emulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    # Refused with a pointer to TOKEN_ENV (main); hidden from --help.
    parser.add_argument("--token", action="append", help=argparse.SUPPRESS)
    parser.add_argument(
        "--keep",
        type=int,
        default=DEFAULT_KEEP,
        help=f"messages and requests kept for the control API, the oldest dropped first"
        f" (default {DEFAULT_KEEP})",
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


def accepted_tokens() -> list[str] | None:
    """The tokens of HERALD_EMULATOR_TOKEN (comma-separated), or None: any of Telegram's form."""
    tokens = [t.strip() for t in os.environ.get(TOKEN_ENV, "").split(",") if t.strip()]
    if any(_TOKEN.fullmatch(t) is None for t in tokens):
        # Never echo the value: it is a secret, or a typo of one.
        raise OptionError(f"{TOKEN_ENV} must hold tokens of the form <digits>:<text>")
    return tokens or None


async def serve(args: argparse.Namespace) -> None:
    emulator = make_emulator(
        tokens=accepted_tokens(),
        keep=args.keep,
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
    if args.token:
        print(
            f"herald emulator: --token would show the token to every user of `ps`;"
            f" set {TOKEN_ENV} instead",
            file=sys.stderr,
        )
        return 2
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
