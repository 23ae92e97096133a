"""Console sessions: a random id in a cookie, the session itself in Redis until the token ends.

Signing in trades a JWT (checked by the gateway's own verifier) for a session, so the token
is read once and then never stored: Redis keeps the operator's name, scopes, the token's
expiry and the session's CSRF token, under the SHA-256 of the cookie's value (whoever reads
Redis cannot sign in with what is there). The key expires when the token does, and sign-out
deletes it, so a copied cookie is worth nothing afterwards. Any gateway process can serve
any request of a session.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page or link
sends it), limited to /console, Secure when the request came over HTTPS (directly, or as
nginx says with X-Forwarded-Proto), and has the token's remaining lifetime as Max-Age.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from herald.api.auth import SCOPE_MANAGE, SCOPE_READ

COOKIE = "herald_console"
# Before sign-in: the double-submit token of the sign-in form (login CSRF).
SIGN_IN_COOKIE = "herald_console_signin"
COOKIE_PATH = "/console"


@dataclass(frozen=True, slots=True)
class Session:
    operator: str
    scopes: frozenset[str]
    expires_at: float  # the token's exp
    csrf: str

    @property
    def can_manage(self) -> bool:
        return SCOPE_MANAGE in self.scopes

    @property
    def can_read(self) -> bool:
        return SCOPE_READ in self.scopes or SCOPE_MANAGE in self.scopes

    @property
    def actor(self) -> str:
        """As the API's PATCH writes it in the audit trail."""
        return f"operator:{self.operator}"

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class SessionStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:console:session:"

    def _key(self, raw: str) -> str:
        return self.prefix + hashlib.sha256(raw.encode()).hexdigest()

    async def create(self, operator: str, scopes: frozenset[str], expires_at: float) -> str:
        """A new session; returns the cookie's value."""
        raw = secrets.token_urlsafe(32)
        record = {
            "operator": operator,
            "scopes": sorted(scopes),
            "expires_at": expires_at,
            "csrf": secrets.token_urlsafe(32),
        }
        ttl_ms = max(1, int((expires_at - time.time()) * 1000))
        await self.redis.set(self._key(raw), json.dumps(record), px=ttl_ms)
        return raw

    async def get(self, raw: str | None) -> Session | None:
        if not raw or len(raw) > 64:
            return None
        data = await self.redis.get(self._key(raw))
        if data is None:
            return None
        record = json.loads(data)
        session = Session(
            operator=record["operator"],
            scopes=frozenset(record["scopes"]),
            expires_at=float(record["expires_at"]),
            csrf=record["csrf"],
        )
        return session if session.expires_at > time.time() else None

    async def delete(self, raw: str | None) -> None:
        if raw and len(raw) <= 64:
            await self.redis.delete(self._key(raw))


def over_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip().lower() == "https"


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int, path: str
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max(0, max_age),
        path=path,
        httponly=True,
        samesite="strict",
        secure=over_https(request),
    )


def clear_cookie(response: Response, request: Request, name: str, path: str) -> None:
    response.delete_cookie(
        name, path=path, httponly=True, samesite="strict", secure=over_https(request)
    )
