"""What every `herald` process checks before it forks or binds.

1. Its configuration. Every `HERALD_*` value must have its form (`herald.config`), and what
   the process needs must be there: the worker a bot token, the gateway a key to verify
   tokens with. A problem is ONE line on stderr naming the variable, and exit status 2;
   the value is never shown (it may be a secret). Before this check, a worker without a
   bot token forked its processes, and each died with a 30-line traceback and was
   restarted every second, forever.
2. Its stores. PostgreSQL or Redis not answering yet (a compose start, a restart) is
   waited for with backoff, one log line per retry, up to `HERALD_STARTUP_WAIT_SECONDS`;
   then exit status 1. Credentials the store refuses are a configuration error (exit 2):
   retrying would not help.

`herald.cli` runs `check(command)` before it hands over to the command.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from herald.config import ConfigError, Settings, env_name, get_settings

DATABASE, REDIS = "PostgreSQL", "Redis"
# What each command needs beyond well-formed settings. Commands not listed are not checked.
NEEDS: dict[str, frozenset[str]] = {
    "api": frozenset({"jwt", DATABASE, REDIS}),
    "worker": frozenset({"bot", DATABASE, REDIS}),
    "poll": frozenset({"bot", DATABASE, REDIS}),
    "webhook": frozenset({"bot"}),
    "migrate": frozenset({DATABASE}),
    "emulator": frozenset(),
    "dev": frozenset(),  # embeds what is not configured; its children check the rest
    "token": frozenset(),  # `herald token` says itself what signing needs
    # A healthcheck and an operator's look: no waiting; it says itself what it cannot read.
    "status": frozenset(),
}
_FIRST_RETRY_SECONDS = 0.5
_MAX_RETRY_SECONDS = 10.0
_CONNECT_TIMEOUT_SECONDS = 5.0


def check(command: str) -> int | None:
    """None when `command` may start, else the exit status (after saying why on stderr)."""
    needs = NEEDS.get(command)
    if needs is None:
        return None
    try:
        settings = load_settings()
        check_needs(settings, needs)
        if not wait_for_stores(settings, needs, command):
            return 1
    except ConfigError as exc:
        print(f"herald {command}: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while waiting for a store
        return 130
    return None


def load_settings() -> Settings:
    """The process's settings; ConfigError naming each malformed variable, on one line."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = [_describe(err) for err in exc.errors(include_input=False)]
        raise ConfigError("; ".join(problems)) from None
    except SettingsError as exc:
        # pydantic-settings could not decode a JSON value (HERALD_INTAKE_QUOTAS).
        match = re.search(r'field "(\w+)"', str(exc))
        name = env_name(match.group(1)) if match else "a HERALD_ variable"
        raise ConfigError(f"{name} is not valid JSON ({exc.__cause__})") from None


def _describe(err: object) -> str:
    assert isinstance(err, dict)
    loc = [str(part) for part in err.get("loc", ())]
    message = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
    if not loc:  # a check across fields: its message names the variables
        return message
    name = env_name(loc[0])
    if name in message:
        return message
    where = f" ({'.'.join(loc[1:])})" if len(loc) > 1 else ""
    return f"{name}{where}: {message}"


def check_needs(settings: Settings, needs: frozenset[str]) -> None:
    if "jwt" in needs:
        settings.check_secrets()
    if "bot" in needs and not settings.bot_token:
        raise ConfigError(
            "HERALD_BOT_TOKEN is not set: the worker needs the bot's token from @BotFather"
        )


def wait_for_stores(settings: Settings, needs: frozenset[str], command: str) -> bool:
    """True once every store the command needs answers; False when the wait is over."""
    deadline = time.monotonic() + settings.startup_wait_seconds
    probes: dict[str, tuple[str, Callable[[Settings, str], None]]] = {
        DATABASE: ("database_url", _probe_postgres),
        REDIS: ("redis_url", _probe_redis),
    }
    for store, (field, probe) in probes.items():
        if store not in needs:
            continue
        delay, attempt = _FIRST_RETRY_SECONDS, 0
        while True:
            try:
                probe(settings, command)
                break
            except ConfigError:
                raise
            except Exception as exc:
                error = _redacted(f"{type(exc).__name__}: {exc}", getattr(settings, field))
            attempt += 1
            remaining = deadline - time.monotonic()
            log = _logger(settings, command)
            if remaining <= 0:
                log.error(
                    "store_unavailable_giving_up",
                    store=store,
                    setting=env_name(field),
                    error=error,
                    attempts=attempt,
                    waited_seconds=settings.startup_wait_seconds,
                )
                return False
            wait = min(delay, remaining)
            log.warning(
                "store_unavailable",
                store=store,
                setting=env_name(field),
                error=error,
                attempt=attempt,
                retry_in_seconds=round(wait, 1),
            )
            time.sleep(wait)
            delay = min(delay * 2, _MAX_RETRY_SECONDS)
        if attempt:
            _logger(settings, command).info("store_available", store=store, attempts=attempt)
    return True


def _probe_postgres(settings: Settings, command: str) -> None:
    import asyncpg

    from herald.db.pool import asyncpg_dsn

    # `herald migrate` may be about to create the database: it needs the maintenance one.
    dsn = asyncpg_dsn(settings.database_url, "postgres" if command == "migrate" else None)

    async def connect() -> None:
        conn = await asyncpg.connect(dsn, timeout=_CONNECT_TIMEOUT_SECONDS)
        await conn.close()

    try:
        asyncio.run(connect())
    except (
        asyncpg.InvalidPasswordError,
        asyncpg.InvalidAuthorizationSpecificationError,
    ) as exc:
        raise ConfigError(f"HERALD_DATABASE_URL: PostgreSQL refused the login ({exc})") from None


def _probe_redis(settings: Settings, command: str) -> None:
    import redis

    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=_CONNECT_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    except (redis.AuthenticationError, redis.exceptions.NoPermissionError) as exc:
        raise ConfigError(f"HERALD_REDIS_URL: Redis refused the login ({exc})") from None
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise ConfigError(f"HERALD_REDIS_URL: Redis refused the login ({exc})") from None
        raise
    finally:
        client.close()


def _redacted(text: str, url: str) -> str:
    """`text` without the URL's password, should a driver ever quote it."""
    match = re.search(r"//[^/@:]*:([^/@]+)@", url)
    return text.replace(match.group(1), "***") if match else text


def _logger(settings: Settings, command: str) -> Any:
    """Logging set up on first use, in the process's own format (JSON or console)."""
    import structlog

    from herald.logging import configure_logging

    if not structlog.is_configured():
        configure_logging(settings, service=command)
    return structlog.get_logger("herald.preflight")
