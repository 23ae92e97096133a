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
(an LRU), each entry honouring the token's own `exp` and `nbf`. The cache is touched by
the event loop only (`current_principal` is async): a cache miss costs one signature check,
well under a millisecond once per token (docs/security.md), not worth a thread hop.

Whatever an unauthenticated caller sends is a 401 in the error envelope, never a 500:
tokens over 1 KB are refused before anything parses them (a JSON header nested a thousand
deep exhausted the recursion limit), time claims must be finite numbers (`Infinity`
overflowed), and any other failure of the JWT library to read a token is a 401 too. A
token may live at most `HERALD_TOKEN_MAX_TTL_SECONDS` from now (`herald token` refuses a
longer `--ttl`), so a leaked token with `exp` 1e308 is not valid forever.
"""

from __future__ import annotations

import argparse
import math
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

# RS256 with a 3072-bit key, every scope and the longest subject makes 977 bytes; with a
# 4096-bit key, subjects up to about 100 characters fit (1015 bytes). `mint_token` refuses
# to make a larger token.
MAX_TOKEN_BYTES = 1024
MAX_SUBJECT_CHARS = 200
DEFAULT_TTL_SECONDS = 3600
# Allowed difference between the clocks of the machine that minted a token and the gateway.
CLOCK_SKEW_SECONDS = 60
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

    ValueError for a token the gateway would refuse: `ttl` over the maximum, over 1 KB.

    >>> mint_token(settings, "billing", ["tasks:write"])  # doctest: +SKIP
    'eyJhbGciOiJIUzI1NiIs...'
    """
    if ttl > settings.token_max_ttl_seconds:
        raise ValueError(
            f"a ttl of {ttl} s is over HERALD_TOKEN_MAX_TTL_SECONDS"
            f" ({settings.token_max_ttl_seconds} s), the longest the gateway accepts"
        )
    now = int(time.time())
    claims = {
        "sub": sub,
        "scope": " ".join(scopes),
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + ttl,
    }
    token: str = jwt.encode(claims, _signing_key(settings), algorithm=settings.jwt_algorithm)
    if len(token) > MAX_TOKEN_BYTES:
        raise ValueError(
            f"the token would be {len(token)} bytes, over the {MAX_TOKEN_BYTES} the gateway"
            " accepts: use a shorter subject"
        )
    return token


class TokenVerifier:
    """Checks bearer tokens against the settings; caches the ones that passed."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._keys = settings.jwt_verification_keys
        self._algorithms = [settings.jwt_algorithm]
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._max_ttl = settings.token_max_ttl_seconds
        # token -> (principal, not before, expires at)
        self._cache: OrderedDict[str, tuple[Principal, float, float]] = OrderedDict()

    def verify_header(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("missing bearer token", code="missing_token")
        if len(authorization) > MAX_TOKEN_BYTES + len("Bearer  "):
            raise _too_large()
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("expected 'Authorization: Bearer <token>'", code="invalid_token")
        return self.verify(token.strip())

    def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise _too_large()
        cached = self._cache.get(token)
        if cached is not None:
            principal, nbf, exp = cached
            if nbf <= self._clock() < exp:
                self._cache.move_to_end(token)
                return principal
            del self._cache[token]  # expired: verify again for the precise error
        claims = self._decode(token)
        nbf, exp = self._check_times(claims)
        principal = _principal(claims)
        self._cache[token] = (principal, nbf, exp)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal

    def _check_times(self, claims: dict[str, Any]) -> tuple[float, float]:
        """(not before, expires at), checked against the verifier's clock."""
        exp = _time_claim(claims, "exp")
        nbf = _time_claim(claims, "nbf") if "nbf" in claims else 0.0
        iat = _time_claim(claims, "iat") if "iat" in claims else None
        now = self._clock()
        if now >= exp:
            raise Unauthorized("token expired", code="token_expired")
        if exp > now + self._max_ttl + CLOCK_SKEW_SECONDS:
            raise Unauthorized(
                "invalid token: it expires further ahead than the gateway's maximum token"
                f" lifetime of {self._max_ttl} s",
                code="invalid_token",
            )
        if iat is not None and iat > now + CLOCK_SKEW_SECONDS:
            raise Unauthorized("invalid token: issued in the future (iat)", code="invalid_token")
        if now < nbf:
            raise Unauthorized("invalid token: not yet valid (nbf)", code="invalid_token")
        return nbf, exp

    def _decode(self, token: str) -> dict[str, Any]:
        error: Exception | str | None = None
        for key in self._keys:
            try:
                return self._decode_with(token, key)
            except JWTClaimsError as exc:
                # The signature matched this key; the claims are wrong whatever the key.
                error = exc
                break
            except JWTError as exc:
                error = error or exc  # the current key's answer is the one to report
            except Exception:
                # jose does not wrap everything malformed input can raise (ValueError,
                # TypeError, RecursionError, OverflowError): still the caller's bad token.
                error = error or "malformed token"
        reason = error or "no verification key is configured"
        raise Unauthorized(f"invalid token: {reason}", code="invalid_token") from None

    def _decode_with(self, token: str, key: str) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=self._algorithms,
            audience=self._audience,
            issuer=self._issuer,
            # Times are checked by `_check_times` against the verifier's clock, the same
            # clock that expires cache entries (jose's `require_exp` would check `exp`
            # against its own, and its `int()` of the time claims overflows on Infinity).
            options={
                "require_aud": True,
                "require_iss": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
        return claims


def _too_large() -> Unauthorized:
    return Unauthorized(f"token too large (over {MAX_TOKEN_BYTES} bytes)", code="invalid_token")


def _time_claim(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if value is None:
        raise Unauthorized(f"invalid token: the {name} claim is required", code="invalid_token")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthorized(f"invalid token: {name} must be a number", code="invalid_token")
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond a float's range
        seconds = math.inf
    if not math.isfinite(seconds):
        raise Unauthorized(f"invalid token: {name} must be a finite time", code="invalid_token")
    return seconds


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUBJECT_CHARS:
        raise Unauthorized("invalid token: sub must be a non-empty string", code="invalid_token")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise Unauthorized("invalid token: scope must be a string", code="invalid_token")
    return Principal(client=sub, scopes=frozenset(scope.split()) & KNOWN_SCOPES)


async def current_principal(request: Request) -> Principal:
    # async: FastAPI would run a plain `def` in its thread pool, beside the event loop
    # that uses the same (unlocked) cache in `_authorize` of the intake routes.
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
    parser.add_argument(
        "--ttl",
        type=int,
        default=DEFAULT_TTL_SECONDS,
        help="seconds, at most HERALD_TOKEN_MAX_TTL_SECONDS (30 days by default)",
    )
    args = parser.parse_args(argv)
    scopes = [s for group in args.scope for s in group.split()]
    unknown = sorted(set(scopes) - KNOWN_SCOPES)
    if unknown or args.ttl <= 0 or not args.sub:
        parser.error(f"unknown scopes {unknown}" if unknown else "--sub and a positive --ttl")
    try:
        print(mint_token(get_settings(), args.sub, scopes, ttl=args.ttl))
    except (ConfigError, ValueError) as exc:
        print(f"herald token: {exc}", file=sys.stderr)
        return 2
    return 0
