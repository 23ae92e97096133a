"""What the gateway's routes share, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from redis.asyncio import Redis

from herald.api.auth import TokenVerifier
from herald.api.enqueue import CoalescingEnqueuer
from herald.api.protection import IntakeGuard
from herald.config import Settings
from herald.db.pool import Pool


@dataclass(slots=True)
class GatewayState:
    settings: Settings
    verifier: TokenVerifier
    pool: Pool  # every API query, and the metrics' counts
    redis: Redis  # readiness
    enqueuer: CoalescingEnqueuer
    guard: IntakeGuard  # quotas and backpressure
    bot_username: str = ""  # for deep links: the setting, or getMe's answer once asked


def gateway(request: Request) -> GatewayState:
    gw: GatewayState = request.app.state.gateway
    return gw


def correlation_id(request: Request) -> str | None:
    value: str | None = request.scope.get("herald.correlation_id")
    return value
