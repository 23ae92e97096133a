"""The `herald` command. Each subcommand lives in the module that owns it and parses its own flags.

herald api | worker | migrate | token | emulator | dev | status  [--help]

Before a subcommand starts, `herald.preflight` checks its configuration (one line and exit
status 2 when it is wrong) and waits for the stores it needs.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Callable, Sequence

# name -> ("module:function", summary); the function takes the rest of argv, returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "api": ("herald.api.server:main", "run the HTTP gateway (uvicorn)"),
    "worker": ("herald.worker.runner:main", "run TaskIQ delivery workers and the sweeper"),
    "migrate": ("herald.db.migrate:main", "create the database if missing, upgrade to head"),
    "token": ("herald.api.auth:token_main", "mint a JWT for a producer or an operator"),
    "emulator": ("herald.emulator.server:main", "run the Telegram Bot API emulator"),
    "dev": ("herald.devmode:main", "run everything in one command with embedded defaults"),
    "status": (
        "herald.status:main",
        "show workers alive, queue, backlog and tasks (--json, --check-self)",
    ),
}


def _usage() -> str:
    lines = ["usage: herald COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines.append("\n`herald COMMAND --help` describes a command's options.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"herald: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    # The imports below allocate tens of thousands of objects that live as long as the
    # process; cycle collections while they are made walk them again and again (a sixth
    # of a worker's start-up). The commands collect once when they are up.
    gc.disable()
    try:
        if not {"-h", "--help"} & set(rest):
            from herald.preflight import check

            refused = check(name)
            if refused is not None:
                return refused
        module_name, func_name = COMMANDS[name][0].split(":")
        func: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), func_name)
    finally:
        gc.enable()
    return func(rest)


if __name__ == "__main__":
    sys.exit(main())
