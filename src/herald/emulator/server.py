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
from dataclasses import fields

from herald.emulator.app import start
from herald.emulator.core import Emulator
from herald.emulator.options import (
    DEFAULT_KEEP,
    LIMIT_RATES,
    FaultConfig,
    LimitConfig,
    OptionError,
)

TOKEN_ENV = "HERALD_EMULATOR_TOKEN"
_TOKEN = re.compile(r"\d+:\S+")
_FAULT_HELP = {"retry_after": "retry_after of a 429 fault", "timeout_seconds": "delay of a timeout"}


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
    # Every flag below is a field of options.py's dataclasses, with that field's default.
    limits = parser.add_argument_group("rate limits (Telegram's by default)")
    limits.add_argument("--no-limits", action="store_true", help="turn every rate limit off")
    for name in LIMIT_RATES:
        limits.add_argument(_flag(name), type=float, default=getattr(LimitConfig(), name))
    faults = parser.add_argument_group("fault injection (shares of send requests)")
    for f in fields(FaultConfig):
        if f.name.startswith("rate_"):
            faults.add_argument(
                _flag(f.name.replace("rate_", "fault_", 1)),
                dest=f.name,
                type=float,
                default=f.default,
                metavar="RATE",
            )
        else:  # retry_after, timeout_seconds, seed (None: an int when given)
            kind = float if isinstance(f.default, float) else int
            faults.add_argument(
                _flag(f.name), type=kind, default=f.default, help=_FAULT_HELP.get(f.name)
            )
    return parser.parse_args(list(argv))


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def accepted_tokens() -> list[str] | None:
    """The tokens of HERALD_EMULATOR_TOKEN (comma-separated), or None: any of Telegram's form."""
    tokens = [t.strip() for t in os.environ.get(TOKEN_ENV, "").split(",") if t.strip()]
    if any(_TOKEN.fullmatch(t) is None for t in tokens):
        # Never echo the value: it is a secret, or a typo of one.
        raise OptionError(f"{TOKEN_ENV} must hold tokens of the form <digits>:<text>")
    return tokens or None


def configs_of(args: argparse.Namespace) -> tuple[LimitConfig, FaultConfig]:
    rates = {name: getattr(args, name) for name in LIMIT_RATES}
    limits = LimitConfig(enabled=not args.no_limits, **rates)
    return limits, FaultConfig(**{f.name: getattr(args, f.name) for f in fields(FaultConfig)})


async def serve(args: argparse.Namespace) -> None:
    limits, faults = configs_of(args)
    emulator = Emulator(tokens=accepted_tokens(), keep=args.keep, limits=limits, faults=faults)
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
