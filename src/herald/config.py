"""Settings, read from `HERALD_*` environment variables and a `.env` file beside.

Outside dev mode there is no default secret: `Settings.check_secrets()` refuses to start
without `HERALD_JWT_SECRET` or `HERALD_JWT_PUBLIC_KEY`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TELEGRAM_API_URL = "https://api.telegram.org"


class ConfigError(RuntimeError):
    """The configuration cannot run a production process."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", env_file=".env", extra="ignore")

    # Infrastructure.
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/herald"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Name of the Redis stream (and its consumer group) that carries task ids.
    queue_name: str = "herald:tasks"
    db_pool_size: int = Field(20, ge=1)

    # Telegram.
    bot_token: str = ""
    telegram_api_url: str = TELEGRAM_API_URL
    telegram_timeout: float = Field(10.0, gt=0)

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

    # --- delivery ---
    # A reserved send slot may lie this far ahead: the task waits for it in its worker slot.
    # Beyond it (a busy chat or group) the task is deferred and comes back when its scope frees.
    rate_max_wait_seconds: float = Field(10.0, ge=0)
    # Kept below the per-chat interval: one reservation per chat at a time.
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
        """Refuse to run a server without a real signing key (dev mode excepted)."""
        if self.dev_mode:
            return
        if self.jwt_algorithm == "HS256" and len(self.jwt_secret) < 32:
            raise ConfigError("HERALD_JWT_SECRET must be set to at least 32 characters")
        if self.jwt_algorithm != "HS256" and not self.jwt_public_key:
            raise ConfigError(f"HERALD_JWT_PUBLIC_KEY must be set for {self.jwt_algorithm}")


@lru_cache
def get_settings() -> Settings:
    return Settings()
