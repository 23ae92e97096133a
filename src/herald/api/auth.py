"""JWT authentication (python-jose) and `herald token`.

Only the configured algorithm is accepted (so no `none`, no HS256 token checked against an
RS256 public key); audience, issuer and expiry are required. Scopes are the space-separated
`scope` claim; the subject is the client.

During a key rotation the gateway also accepts the key being retired
(`HERALD_JWT_PREVIOUS_SECRET` or `HERALD_JWT_PREVIOUS_PUBLIC_KEY`, same algorithm), so
that old and new tokens both pass until the old ones run out; `herald token` signs with
the current key only.

Verifying a signature costs more than the rest of an intake request, and a producer sends
the same token thousands of times, so successful verifications are cached by token string
(an LRU), each entry honouring the token's own `exp` and `nbf`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from jose import JWTError, jwt
from jose.exceptions import JWTClaimsError

from herald.api.errors import Forbidden, Unauthorized
from herald.config import ConfigError, Settings

SCOPE_WRITE = "tasks:write"
SCOPE_READ = "tasks:read"
SCOPE_MANAGE = "tasks:manage"
KNOWN_SCOPES = frozenset({SCOPE_WRITE, SCOPE_READ, SCOPE_MANAGE})

MAX_TOKEN_BYTES = 8192
MAX_SUBJECT_CHARS = 200
DEFAULT_TTL_SECONDS = 3600
_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    client: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def require_any(self, *scopes: str) -> None:
        if not any(s in self.scopes for s in scopes):
            raise Forbidden(
                f"the token lacks the scope {' or '.join(scopes)}",
                code="missing_scope",
                details={"required_any": list(scopes)},
            )


def _signing_key(settings: Settings) -> str:
    if settings.jwt_algorithm == "HS256":
        if not settings.jwt_secret:
            raise ConfigError("HERALD_JWT_SECRET is not set")
        return settings.jwt_secret
    if not settings.jwt_private_key:
        raise ConfigError(f"HERALD_JWT_PRIVATE_KEY is needed to sign {settings.jwt_algorithm}")
    return settings.jwt_private_key


def mint_token(
    settings: Settings, sub: str, scopes: Iterable[str], ttl: int = DEFAULT_TTL_SECONDS
) -> str:
    """A token for `sub` with `scopes`, valid for `ttl` seconds, signed as the gateway expects.

    >>> mint_token(settings, "billing", ["tasks:write"])  # doctest: +SKIP
    'eyJhbGciOiJIUzI1NiIs...'
    """
    now = int(time.time())
    claims = {
        "sub": sub,
        "scope": " ".join(scopes),
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, _signing_key(settings), algorithm=settings.jwt_algorithm)


class TokenVerifier:
    """Checks bearer tokens against the settings; caches the ones that passed."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._keys = settings.jwt_verification_keys
        self._algorithms = [settings.jwt_algorithm]
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        # token -> (principal, not before, expires at)
        self._cache: OrderedDict[str, tuple[Principal, float, float]] = OrderedDict()

    def verify_header(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("missing bearer token", code="missing_token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("expected 'Authorization: Bearer <token>'", code="invalid_token")
        return self.verify(token.strip())

    def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            principal, nbf, exp = cached
            if nbf <= self._clock() < exp:
                self._cache.move_to_end(token)
                return principal
            del self._cache[token]  # expired: verify again for the precise error
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthorized("token too large", code="invalid_token")
        claims = self._decode(token)
        nbf, exp = _time_claim(claims, "nbf", 0.0), _time_claim(claims, "exp", None)
        now = self._clock()
        if now >= exp:
            raise Unauthorized("token expired", code="token_expired")
        if now < nbf:
            raise Unauthorized("invalid token: not yet valid (nbf)", code="invalid_token")
        principal = _principal(claims)
        self._cache[token] = (principal, nbf, exp)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal

    def _decode(self, token: str) -> dict[str, Any]:
        error: Exception | None = None
        for key in self._keys:
            try:
                return self._decode_with(token, key)
            except JWTClaimsError as exc:
                # The signature matched this key; the claims are wrong whatever the key.
                error = exc
                break
            except (JWTError, ValueError, TypeError) as exc:
                # ValueError/TypeError: jose trips on some malformed headers and claims.
                error = error or exc  # the current key's answer is the one to report
        reason = error or "no verification key is configured"
        raise Unauthorized(f"invalid token: {reason}", code="invalid_token") from None

    def _decode_with(self, token: str, key: str) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=self._algorithms,
            audience=self._audience,
            issuer=self._issuer,
            # Times are checked by `verify` against the verifier's clock, the same clock
            # that expires cache entries.
            options={
                "require_exp": True,
                "require_aud": True,
                "require_iss": True,
                "verify_exp": False,
                "verify_nbf": False,
            },
        )
        return claims


def _time_claim(claims: dict[str, Any], name: str, default: float | None) -> float:
    value = claims.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthorized(f"invalid token: {name} must be a number", code="invalid_token")
    return float(value)


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUBJECT_CHARS:
        raise Unauthorized("invalid token: sub must be a non-empty string", code="invalid_token")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise Unauthorized("invalid token: scope must be a string", code="invalid_token")
    return Principal(client=sub, scopes=frozenset(scope.split()) & KNOWN_SCOPES)


def current_principal(request: Request) -> Principal:
    verifier: TokenVerifier = request.app.state.gateway.verifier
    return verifier.verify_header(request.headers.get("authorization"))


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def token_main(argv: list[str]) -> int:
    from herald.config import get_settings

    parser = argparse.ArgumentParser(
        prog="herald token", description="Print a JWT signed with the configured key."
    )
    parser.add_argument("--sub", required=True, help="the client (producer or operator) name")
    parser.add_argument(
        "--scope",
        action="append",
        required=True,
        help=f"space-separated scopes, repeatable ({', '.join(sorted(KNOWN_SCOPES))})",
    )
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="seconds")
    args = parser.parse_args(argv)
    scopes = [s for group in args.scope for s in group.split()]
    unknown = sorted(set(scopes) - KNOWN_SCOPES)
    if unknown or args.ttl <= 0 or not args.sub:
        parser.error(f"unknown scopes {unknown}" if unknown else "--sub and a positive --ttl")
    try:
        print(mint_token(get_settings(), args.sub, scopes, ttl=args.ttl))
    except ConfigError as exc:
        print(f"herald token: {exc}", file=sys.stderr)
        return 2
    return 0
