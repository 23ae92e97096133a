"""Settings, read from `HERALD_*` environment variables and a `.env` file beside.

The form of every value is checked when the settings are read (a URL that does not parse,
a bot token not of Telegram's form, a secret under 32 characters, quotas that are not a
JSON object of rates): `herald.preflight` turns the error into one line naming the
variable. Errors never echo the value, which may be a secret.

Outside dev mode there is no default secret: `Settings.check_secrets()` refuses to start
without `HERALD_JWT_SECRET` or `HERALD_JWT_PUBLIC_KEY`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.connection import parse_url as parse_redis_url
from sqlalchemy.engine import make_url

TELEGRAM_API_URL = "https://api.telegram.org"
ENV_PREFIX = "HERALD_"
# HS256 keys shorter than this can be brute-forced from one token.
MIN_SECRET_CHARS = 32
# Telegram's form, `<bot id>:<secret>`; aiogram refuses anything else when a worker starts.
BOT_TOKEN_FORM = re.compile(r"\d+:[A-Za-z0-9_-]+")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# Svix's published schedule: the delay before each attempt of a status callback.
CALLBACK_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
WEBHOOK_SECRET_PREFIX = "whsec_"
_URL_FORM = re.compile(r"https?://[^/\s]+(/\S*)?")


def webhook_secret_key(secret: str) -> bytes | None:
    """The HMAC key of a Standard Webhooks secret (`whsec_` + base64 of 24 to 64 bytes),
    None when `secret` is not of that form."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        return None
    try:
        key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if 24 <= len(key) <= 64 else None


class CallbackEndpointConfig(BaseModel):
    """One client's endpoint in HERALD_CALLBACKS (`herald.callbacks`)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: str
    secret: str
    # During a rotation: the secret being retired; both sign until it is removed.
    previous_secret: str | None = None
    # The hosts a task's own callback_url may name; the URL's host when absent.
    hosts: list[str] | None = None
    # The client also hears what its recipients say and do: message.received,
    # recipient.linked, ... (docs/callbacks.md, "Recipients' events").
    updates: bool = False

    @field_validator("url")
    @classmethod
    def _url_form(cls, value: str) -> str:
        if not _URL_FORM.fullmatch(value):
            raise ValueError("url must be an http:// or https:// URL")
        return value

    @field_validator("secret", "previous_secret")
    @classmethod
    def _secret_form(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and webhook_secret_key(value) is None:
            raise ValueError(
                f"{info.field_name} must be whsec_ followed by the base64 of 24 to 64 random"
                " bytes (e.g. whsec_$(openssl rand -base64 32))"
            )
        return value


def env_name(field: str) -> str:
    """The environment variable of a settings field: `bot_token` -> `HERALD_BOT_TOKEN`."""
    return ENV_PREFIX + field.upper()


class ConfigError(RuntimeError):
    """The configuration cannot run a production process."""


# With rate limits on, how long a queue message waits in a worker for room on the bot-wide
# horizon before its hint goes back to the queue (`delivery/pipeline.py`): long enough
# for a process's whole line of messages at 30/s (few hints pushed back and popped again),
# short enough for a stopping process (its shutdown wait counts it, `worker/runner.py`).
CLAIM_PATIENCE_SECONDS = 10.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        extra="ignore",
        # A validation error (and its traceback) must not print a secret it refused.
        hide_input_in_errors=True,
    )

    # Infrastructure.
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/herald"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The Redis list that carries task ids (LPUSH/BRPOP, see docs/architecture.md); Herald's
    # other Redis keys (rate limits, worker presence) are prefixed with it.
    queue_name: str = "herald:tasks"
    db_pool_size: int = Field(20, ge=1)

    # Telegram.
    bot_token: str = ""
    telegram_api_url: str = TELEGRAM_API_URL
    telegram_timeout: float = Field(10.0, gt=0)
    # Telegram's updates (docs/recipients.md). The secret Telegram sends back in
    # X-Telegram-Bot-Api-Secret-Token with every webhook call; no default: without it the
    # webhook endpoint is off (polling needs none).
    webhook_secret: str = ""
    # The bot's @username for deep links, without the @; empty: asked of getMe once.
    bot_username: str = ""
    # How long a deep link from POST /api/recipients/{id}/link may be used.
    recipient_link_ttl_seconds: float = Field(7 * 24 * 3600.0, ge=60)
    # The welcome message a newly bound recipient gets, per client; "*" covers the
    # others; "{client}" is replaced by the client's name. In the environment as JSON:
    # HERALD_RECIPIENT_WELCOME='{"billing": "Invoices will come here", "*": "Hello"}'.
    recipient_welcome: dict[str, str] = Field(default_factory=dict)
    # getUpdates' long-poll wait (`herald poll`), seconds.
    poll_timeout_seconds: int = Field(25, ge=0, le=50)
    # The worker takes the updates by getUpdates itself, as `herald poll` does: one
    # process of all those with this on polls at a time (a PostgreSQL advisory lock), the
    # others stand by. Not with a webhook set: Telegram refuses getUpdates then.
    poll_updates: bool = False
    # For tests only: `herald poll` exits at once after a getUpdates that brought updates,
    # before storing them (the crash the offset in PostgreSQL must survive).
    poll_crash_after_fetch: bool = False

    # Auth.
    jwt_secret: str = ""
    jwt_public_key: str = ""
    jwt_private_key: str = ""  # only for `herald token` with an asymmetric algorithm
    # During a key rotation: the key being retired, still accepted (never used to sign).
    jwt_previous_secret: str = ""
    jwt_previous_public_key: str = ""
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_audience: str = "herald"
    jwt_issuer: str = "herald"
    # The longest a token may live: `herald token --ttl` is refused beyond it, and the
    # gateway refuses tokens that expire further ahead than this from now.
    token_max_ttl_seconds: int = Field(30 * 24 * 3600, ge=60)

    # Telegram's limits, shared by all workers through Redis.
    rate_global_per_second: float = Field(30.0, ge=0)
    rate_chat_per_second: float = Field(1.0, ge=0)
    rate_group_per_minute: float = Field(20.0, ge=0)

    # Delivery policy.
    max_attempts: int = Field(5, ge=1)
    lease_seconds: float = Field(30.0, gt=0)
    backoff_base_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)
    sweep_interval_seconds: float = Field(1.0, gt=0)
    # A due pending task untouched this long is re-enqueued by the sweeper.
    requeue_after_seconds: float = Field(5.0, gt=0)

    # Intake limits.
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_batch_items: int = Field(1000, ge=1)

    dev_mode: bool = False
    log_level: str = "INFO"
    log_json: bool = True
    # One log line per HTTP request from the gateway (also `herald api --access-log`).
    access_log: bool = False
    # How long a process waits at start for PostgreSQL and Redis (retrying with backoff,
    # a line per retry) before it gives up with exit status 1. 0: one try.
    startup_wait_seconds: float = Field(300.0, ge=0)

    # --- gateway ---
    # Ids of concurrent requests pushed to Redis together: one LPUSH per window.
    enqueue_window_seconds: float = Field(0.001, ge=0, le=0.1)
    # A push slower than this counts as failed (the sweeper takes over), and no request
    # waits longer than this for its push, so intake never hangs on a slow Redis.
    enqueue_timeout_seconds: float = Field(1.0, gt=0)
    # Per-client intake quotas in tasks per second, shared by all gateway processes
    # through Redis; "*" covers clients not listed; empty means no quota. In the
    # environment as JSON: HERALD_INTAKE_QUOTAS='{"billing": 200, "*": 50}'.
    intake_quotas: dict[str, float] = Field(default_factory=dict)
    # How many seconds of its quota a client may send at once (its burst).
    intake_quota_burst_seconds: float = Field(2.0, gt=0)
    # Backpressure: with more due pending tasks than this, intake answers 503 (0: off).
    intake_backlog_limit: int = Field(0, ge=0)
    intake_backlog_check_seconds: float = Field(1.0, gt=0)
    # Retry-After sent with 503 (backlog); a 429 says when the quota allows again.
    intake_retry_after_seconds: int = Field(5, ge=1)
    # How often each gateway process reads the task gauges of /metrics from PostgreSQL.
    metrics_refresh_seconds: float = Field(5.0, gt=0)
    # The HTTP server's own limits (api/httplimits.py): request line and headers, the
    # time to send them, and connections or requests at once before 503s.
    api_max_header_bytes: int = Field(16_384, ge=1024)
    api_header_timeout_seconds: float = Field(10.0, gt=0)
    api_limit_concurrency: int = Field(1000, ge=1)

    # --- delivery ---
    # The bot-wide horizon: a claim reserves send slots at most this far ahead (the task
    # waits for its slot in its worker slot). Tasks the bot cannot send within it stay
    # pending, so a task of higher priority arriving meanwhile waits at most this long.
    rate_max_wait_seconds: float = Field(1.0, ge=0)
    # The same for a chat or group, kept below its interval: one reservation per chat at a
    # time. Beyond it (a busy chat or group) the task is deferred until its scope frees.
    rate_chat_max_wait_seconds: float = Field(0.5, ge=0)
    # The sweeper skips re-enqueueing while the queue already holds this many messages.
    sweep_max_queue_length: int = Field(10_000, ge=1)
    sweep_batch_size: int = Field(1000, ge=1)
    # Messages popped from Redis per round trip by a worker process.
    worker_fetch_batch: int = Field(32, ge=1)
    # Each worker process refreshes its heartbeat key this often; the key lives three
    # intervals, so a stalled or killed process leaves `herald status` within that.
    worker_heartbeat_seconds: float = Field(1.0, gt=0)
    # At INFO a worker process logs one summary line per interval, not a line per message.
    worker_summary_seconds: float = Field(10.0, gt=0)

    # --- retention ---
    # Final tasks (delivered, failed, cancelled) are deleted with their events this many
    # days after their last change; 0 keeps everything. Uncertain tasks are never purged.
    retention_days: float = Field(30.0, ge=0)
    retention_interval_seconds: float = Field(60.0, gt=0)
    retention_batch_size: int = Field(500, ge=1, le=10_000)

    # --- status callbacks (herald.callbacks, docs/callbacks.md) ---
    # Endpoints per client, as JSON:
    # HERALD_CALLBACKS='{"billing": {"url": "https://...", "secret": "whsec_..."}}'.
    callbacks: dict[str, CallbackEndpointConfig] = Field(default_factory=dict)
    # The delay before each attempt of an event, in seconds; after the last, it failed.
    callback_retry_schedule: list[float] = Field(
        default_factory=lambda: list(CALLBACK_RETRY_SCHEDULE), min_length=1
    )
    # A 2xx within this many seconds is a success; anything else is retried.
    callback_timeout_seconds: float = Field(10.0, gt=0)
    # Sends at once per worker process (and its connections to endpoints): apart from
    # the Telegram deliveries, which a slow endpoint never holds up.
    callback_concurrency: int = Field(32, ge=1, le=1000)
    # How often an idle sender looks for due events.
    callback_poll_seconds: float = Field(0.5, gt=0)
    # A claimed event whose worker records nothing within this is due again.
    callback_lease_seconds: float = Field(60.0, gt=0)
    # An endpoint that failed every attempt for this long is paused until an operator
    # resumes it (POST /api/callbacks/{client}/resume).
    callback_pause_after_seconds: float = Field(86_400.0, gt=0)
    # After a rotation (PUT /api/callbacks with "rotate": true) the old secret still
    # signs, beside the new one, this long unless the request says otherwise.
    callback_rotation_grace_seconds: float = Field(86_400.0, ge=0)

    @field_validator("jwt_secret", "jwt_previous_secret")
    @classmethod
    def _strong_secret(cls, value: str, info: ValidationInfo) -> str:
        if value and len(value) < MIN_SECRET_CHARS:
            raise ValueError(
                f"{env_name(str(info.field_name))} must be at least {MIN_SECRET_CHARS}"
                f" characters (it has {len(value)}); make one with `openssl rand -hex 32`"
            )
        return value

    @field_validator("bot_token")
    @classmethod
    def _bot_token_form(cls, value: str) -> str:
        if value and not BOT_TOKEN_FORM.fullmatch(value):
            raise ValueError(
                "HERALD_BOT_TOKEN is not of Telegram's form <bot id>:<secret>"
                " (as @BotFather gives it, e.g. 123456:ABC-def)"
            )
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret_form(cls, value: str) -> str:
        # Telegram's own rule for secret_token, and at least as long as our other secrets.
        if value and not re.fullmatch(rf"[A-Za-z0-9_-]{{{MIN_SECRET_CHARS},256}}", value):
            raise ValueError(
                f"HERALD_WEBHOOK_SECRET must be {MIN_SECRET_CHARS} to 256 characters of"
                " A-Z, a-z, 0-9, _ and - (make one with `openssl rand -hex 32`)"
            )
        return value

    @field_validator("bot_username")
    @classmethod
    def _bot_username_form(cls, value: str) -> str:
        value = value.removeprefix("@")
        if value and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,31}", value):
            raise ValueError("HERALD_BOT_USERNAME is not a Telegram username")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_form(cls, value: str) -> str:
        # The libpq forms name no driver; Herald speaks asyncpg either way.
        for plain in ("postgresql://", "postgres://"):
            if value.startswith(plain):
                value = "postgresql+asyncpg://" + value.removeprefix(plain)
        try:
            url = make_url(value)
        except ValueError:  # sqlalchemy's int() of the port
            problem = "its port is not a number"
        except Exception:  # sqlalchemy.exc.ArgumentError
            problem = "it does not parse as a URL"
        else:
            if url.drivername != "postgresql+asyncpg":
                problem = (
                    f"the scheme must be postgresql:// or postgresql+asyncpg://,"
                    f" not {url.drivername}://"
                )
            elif url.port is not None and not 0 < url.port < 65536:
                problem = "its port is not from 1 to 65535"
            elif not url.database:
                problem = "it names no database"
            else:
                return value
        raise ValueError(
            f"HERALD_DATABASE_URL is malformed: {problem}"
            " (expected postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE)"
        )

    @field_validator("redis_url")
    @classmethod
    def _redis_url_form(cls, value: str) -> str:
        try:
            parts = parse_redis_url(value)  # type: ignore[no-untyped-call]
        except ValueError:
            parts = None
        port = parts.get("port") if parts else None
        if parts is None or (port is not None and not 0 < port < 65536):
            raise ValueError(
                "HERALD_REDIS_URL is malformed (expected redis://[:PASSWORD@]HOST:PORT/DB,"
                " rediss://... or unix:///PATH)"
            )
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _telegram_url_form(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ValueError("HERALD_TELEGRAM_API_URL must be an http:// or https:// URL")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise ValueError(f"HERALD_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        return value

    @field_validator("intake_quotas")
    @classmethod
    def _quota_rates(cls, value: dict[str, float]) -> dict[str, float]:
        for client, rate in value.items():
            if not client or not math.isfinite(rate) or rate < 0:
                raise ValueError(
                    "HERALD_INTAKE_QUOTAS must map client names to rates of 0 or more tasks"
                    ' per second, e.g. {"billing": 200, "*": 50}'
                )
        return value

    @field_validator("callback_retry_schedule")
    @classmethod
    def _schedule(cls, value: list[float]) -> list[float]:
        if any(not math.isfinite(d) or d < 0 for d in value):
            raise ValueError(
                "HERALD_CALLBACK_RETRY_SCHEDULE must be a JSON list of delays of 0 or more"
                " seconds, e.g. [0, 5, 300]"
            )
        return value

    @model_validator(mode="after")
    def _callback_lease_covers_timeout(self) -> Settings:
        if self.callback_lease_seconds <= self.callback_timeout_seconds:
            raise ValueError(
                "HERALD_CALLBACK_LEASE_SECONDS must be longer than HERALD_CALLBACK_TIMEOUT_SECONDS"
            )
        return self

    @field_validator("recipient_welcome")
    @classmethod
    def _welcome_texts(cls, value: dict[str, str]) -> dict[str, str]:
        for client, text in value.items():
            if not client or not 1 <= len(text) <= 4096 or "\x00" in text:
                raise ValueError(
                    "HERALD_RECIPIENT_WELCOME must map client names to texts of 1 to 4096"
                    ' characters, e.g. {"billing": "Invoices will come here"}'
                )
        return value

    @property
    def bot_id(self) -> int:
        """The bot's key in the tables of updates, chats and recipients: the digits of its
        token (Telegram's bot id); 0 when no bot is configured."""
        return int(self.bot_token.partition(":")[0]) if self.bot_token else 0

    @model_validator(mode="after")
    def _algorithm_matches_key(self) -> Settings:
        if (self.jwt_public_key or self.jwt_previous_public_key) and self.jwt_algorithm == "HS256":
            raise ValueError(
                "HERALD_JWT_PUBLIC_KEY and HERALD_JWT_PREVIOUS_PUBLIC_KEY need"
                " HERALD_JWT_ALGORITHM RS256 or ES256"
            )
        if self.jwt_previous_secret and self.jwt_algorithm != "HS256":
            raise ValueError("HERALD_JWT_PREVIOUS_SECRET is only for HERALD_JWT_ALGORITHM HS256")
        return self

    @property
    def jwt_verification_keys(self) -> list[str]:
        """The keys a token may be signed with: the current one first, then the one being
        retired during a rotation. All of them for the one configured algorithm."""
        if self.jwt_algorithm == "HS256":
            keys = [self.jwt_secret, self.jwt_previous_secret]
        else:
            keys = [self.jwt_public_key, self.jwt_previous_public_key]
        return [k for k in keys if k]

    def check_secrets(self) -> None:
        """Refuse to run a gateway without a key it can verify with (dev mode may have none:
        every token is then refused). A weak secret never gets this far (`_strong_secret`)."""
        if self.jwt_algorithm == "HS256":
            if not self.jwt_secret and not self.dev_mode:
                raise ConfigError(
                    f"HERALD_JWT_SECRET must be set to at least {MIN_SECRET_CHARS} characters"
                )
            return
        if not self.jwt_public_key and not self.dev_mode:
            raise ConfigError(f"HERALD_JWT_PUBLIC_KEY must be set for {self.jwt_algorithm}")
        from jose import jwk

        for field in ("jwt_public_key", "jwt_previous_public_key"):
            key = getattr(self, field)
            try:
                if key:
                    jwk.construct(key, self.jwt_algorithm)
            except Exception:  # jose raises JWKError, or whatever its backend does
                raise ConfigError(
                    f"{env_name(field)} is not a PEM public key for {self.jwt_algorithm}"
                ) from None


@lru_cache
def get_settings() -> Settings:
    return Settings()
