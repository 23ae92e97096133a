"""JWT checks: every malformed, foreign or expired token is 401; a missing scope is 403."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from herald import cli
from herald.api.auth import MAX_SUBJECT_CHARS, TokenVerifier, mint_token
from herald.api.errors import Unauthorized
from herald.config import ConfigError, get_settings
from tests.api.conftest import TEXT_TASK, Api
from tests.conftest import TEST_JWT_SECRET, make_settings


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "billing",
        "scope": "tasks:write",
        "aud": "herald",
        "iss": "herald",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _alg_none(claims: dict[str, Any]) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _hs256(header: dict[str, Any] | str, claims: dict[str, Any]) -> str:
    """Signed with the test secret, byte for byte as given: jose would refuse to encode
    some of these (`Infinity`, headers nested a thousand deep), an attacker would not."""
    raw_header = header if isinstance(header, str) else json.dumps(header)
    signing_input = (
        base64.urlsafe_b64encode(raw_header.encode()).decode().rstrip("=")
        + "."
        + _b64(claims)  # json.dumps writes inf as `Infinity`, as the attack did
    )
    sig = hmac.new(TEST_JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}"


def _nested_header(depth: int) -> str:
    return '{"alg": "HS256", "typ": "JWT", "x": ' + "[" * depth + "]" * depth + "}"


HS256 = {"alg": "HS256", "typ": "JWT"}
DAY = 24 * 3600


def _tampered(claims: dict[str, Any]) -> str:
    header, _, signature = jwt.encode(claims, TEST_JWT_SECRET, "HS256").split(".")
    forged = _b64({**claims, "sub": "someone-else", "scope": "tasks:manage"})
    return f"{header}.{forged}.{signature}"


BAD_TOKENS = {
    "expired": lambda: jwt.encode(_claims(exp=int(time.time()) - 5), TEST_JWT_SECRET, "HS256"),
    "bad signature": lambda: jwt.encode(_claims(), "another-secret-" + "y" * 32, "HS256"),
    "wrong audience": lambda: jwt.encode(_claims(aud="other"), TEST_JWT_SECRET, "HS256"),
    "no audience": lambda: jwt.encode(_claims(aud=None), TEST_JWT_SECRET, "HS256"),
    "wrong issuer": lambda: jwt.encode(_claims(iss="evil"), TEST_JWT_SECRET, "HS256"),
    "no expiry": lambda: jwt.encode(_claims(exp=None), TEST_JWT_SECRET, "HS256"),
    "not yet valid": lambda: jwt.encode(
        _claims(nbf=int(time.time()) + 300), TEST_JWT_SECRET, "HS256"
    ),
    "alg none": lambda: _alg_none(_claims()),
    "HS512 with the secret": lambda: jwt.encode(_claims(), TEST_JWT_SECRET, "HS512"),
    "tampered payload": lambda: _tampered(_claims()),
    "scope not a string": lambda: jwt.encode(
        _claims(scope=["tasks:write"]), TEST_JWT_SECRET, "HS256"
    ),
    "empty subject": lambda: jwt.encode(_claims(sub=""), TEST_JWT_SECRET, "HS256"),
    "garbage": lambda: "not.a.token",
    "oversized": lambda: jwt.encode(_claims(pad="x" * 10_000), TEST_JWT_SECRET, "HS256"),
    # Finding 11.5: each of these was a 500 with a traceback, or passed.
    "validly signed but over 1 KB": lambda: jwt.encode(
        _claims(pad="x" * 1100), TEST_JWT_SECRET, "HS256"
    ),
    "header nested 1,200 deep": lambda: _hs256(_nested_header(1200), _claims()),
    "exp Infinity": lambda: _hs256(HS256, _claims(exp=float("inf"))),
    "iat Infinity": lambda: _hs256(HS256, _claims(iat=float("inf"))),
    "iat -Infinity": lambda: _hs256(HS256, _claims(iat=float("-inf"))),
    "exp 1e308": lambda: _hs256(HS256, _claims(exp=1e308)),
    "iat 1e308": lambda: _hs256(HS256, _claims(iat=1e308)),
    "exp 10**400": lambda: _hs256(HS256, _claims(exp=10**400)),
    "nbf NaN": lambda: _hs256(HS256, _claims(nbf=float("nan"))),
    # Finding 11.11: a lifetime beyond HERALD_TOKEN_MAX_TTL_SECONDS (30 days by default).
    "exp in 31 days": lambda: jwt.encode(
        _claims(exp=int(time.time()) + 31 * DAY), TEST_JWT_SECRET, "HS256"
    ),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_bad_token_is_401_and_stores_nothing(api: Api, case: str) -> None:
    token = BAD_TOKENS[case]()
    resp = await api.client.post(
        "/api/tasks",
        json=TEXT_TASK,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": case},
    )
    assert resp.status_code == 401, (case, resp.text)
    assert resp.headers["www-authenticate"] == "Bearer"
    assert resp.json()["error"]["code"] in {"invalid_token", "token_expired"}
    assert await api.count() == 0


async def test_malformed_tokens_log_no_traceback(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    for case in ("header nested 1,200 deep", "exp Infinity", "exp 10**400"):
        token = BAD_TOKENS[case]()
        resp = await api.client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, (case, resp.text)
        assert resp.json()["error"]["code"] == "invalid_token"
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err


async def test_a_header_over_1_kb_is_refused_before_decoding(api: Api) -> None:
    # A header this deep would exhaust the recursion limit if it reached the JSON parser.
    token = _hs256(_nested_header(100_000), _claims())
    resp = await api.client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    assert resp.json()["error"] == {
        "code": "invalid_token",
        "message": "token too large (over 1024 bytes)",
        "details": None,
    }


def test_the_largest_realistic_token_fits_in_1_kb() -> None:
    """RS256 with a 3072-bit key (the rotation guide's), every scope, the longest subject."""
    private, public = _rsa_pair(bits=3072)
    settings = make_settings(
        "postgresql+asyncpg://unused/db",
        jwt_algorithm="RS256",
        jwt_public_key=public,
        jwt_private_key=private,
        jwt_secret="",
    )
    subject = "s" * MAX_SUBJECT_CHARS
    token = mint_token(settings, subject, ["tasks:write", "tasks:read", "tasks:manage"])
    assert len(token) <= 1024
    assert TokenVerifier(settings).verify(token).client == subject


async def test_tokens_are_checked_on_the_event_loop_thread(api: Api) -> None:
    """The verifier's cache is not thread-safe: it must be touched by the loop alone, not by
    the thread pool that runs plain `def` dependencies."""
    threads: set[int] = set()

    def clock() -> float:
        threads.add(threading.get_ident())
        return time.time()

    api.app.state.gateway.verifier = TokenVerifier(api.settings, clock=clock)
    reader = api.auth(scopes="tasks:read")
    for path in ("/api/tasks", "/api/tasks/1", "/api/tasks/1/events"):
        resp = await api.client.get(path, headers=reader)
        assert resp.status_code in {200, 404}, resp.text
    assert threads == {threading.get_ident()}


async def test_no_token_or_other_scheme_is_401(api: Api) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        for method, path in (
            ("POST", "/api/tasks"),
            ("GET", "/api/tasks"),
            ("GET", "/api/tasks/1"),
        ):
            resp = await api.client.request(method, path, json=TEXT_TASK, headers=headers)
            assert resp.status_code == 401, (headers, path)


async def test_missing_scope_is_403(api: Api) -> None:
    reader = api.auth(scopes="tasks:read")
    resp = await api.client.post(
        "/api/tasks", json=TEXT_TASK, headers={**reader, "Idempotency-Key": "r"}
    )
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "missing_scope"
    nobody = api.auth(scopes="")
    assert (await api.client.get("/api/tasks", headers=nobody)).status_code == 403
    writer = api.auth(scopes="tasks:write")
    patch = await api.client.patch("/api/tasks/1", json={"status": "pending"}, headers=writer)
    assert patch.status_code == 403
    assert await api.count() == 0


def test_cached_token_still_expires() -> None:
    settings = make_settings("postgresql+asyncpg://unused/db")
    now = [time.time()]
    verifier = TokenVerifier(settings, clock=lambda: now[0])
    token = mint_token(settings, "billing", ["tasks:write"], ttl=60)
    assert verifier.verify(token).client == "billing"
    assert verifier.verify(token).client == "billing"  # from the cache
    now[0] += 61
    with pytest.raises(Unauthorized) as excinfo:
        verifier.verify(token)
    assert excinfo.value.code == "token_expired"


def _rsa_pair(bits: int = 2048) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_rs256_accepts_its_tokens_and_refuses_hs256_signed_with_public_key() -> None:
    private, public = _rsa_pair()
    settings = make_settings(
        "postgresql+asyncpg://unused/db",
        jwt_algorithm="RS256",
        jwt_public_key=public,
        jwt_private_key=private,
        jwt_secret="",
    )
    settings.check_secrets()
    verifier = TokenVerifier(settings)
    assert verifier.verify(mint_token(settings, "ops", ["tasks:manage"])).scopes == {"tasks:manage"}
    # The classic confusion: an HS256 token whose HMAC key is the public key's PEM.
    header = _b64({"alg": "HS256", "typ": "JWT"})
    payload = _b64(_claims())
    sig = hmac.new(public.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}"
    with pytest.raises(Unauthorized):
        verifier.verify(forged)
    with pytest.raises(Unauthorized):
        verifier.verify(_alg_none(_claims()))


def test_no_secret_refuses_to_mint_and_to_serve() -> None:
    settings = make_settings("postgresql+asyncpg://unused/db", jwt_secret="")
    with pytest.raises(ConfigError):
        mint_token(settings, "x", ["tasks:write"])
    with pytest.raises(ConfigError):
        settings.check_secrets()


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Commands read `get_settings()`: a cleared cache, no .env, the test's variables."""
    monkeypatch.chdir("/")
    monkeypatch.setenv("HERALD_JWT_SECRET", TEST_JWT_SECRET)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_herald_token_command_prints_a_valid_token(
    env_settings: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.main(["token", "--sub", "ops", "--scope", "tasks:read tasks:manage", "--ttl", "90"])
        == 0
    )
    token = capsys.readouterr().out.strip()
    principal = TokenVerifier(make_settings("postgresql+asyncpg://unused/db")).verify(token)
    assert principal.client == "ops"
    assert principal.scopes == {"tasks:read", "tasks:manage"}
    claims = jwt.get_unverified_claims(token)
    assert claims["exp"] - claims["iat"] == 90
    with pytest.raises(SystemExit) as exc:
        cli.main(["token", "--sub", "ops", "--scope", "tasks:everything"])
    assert exc.value.code == 2
    env_settings.setenv("HERALD_JWT_SECRET", "")
    get_settings.cache_clear()
    assert cli.main(["token", "--sub", "ops", "--scope", "tasks:write"]) == 2
    assert "HERALD_JWT_SECRET" in capsys.readouterr().err


def test_herald_token_refuses_a_ttl_over_the_maximum(
    env_settings: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ten_years = str(3650 * DAY)
    assert cli.main(["token", "--sub", "ops", "--scope", "tasks:read", "--ttl", ten_years]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "HERALD_TOKEN_MAX_TTL_SECONDS" in line
    env_settings.setenv("HERALD_TOKEN_MAX_TTL_SECONDS", "3600")
    get_settings.cache_clear()
    assert cli.main(["token", "--sub", "ops", "--scope", "tasks:read", "--ttl", "3601"]) == 2
    assert "3600" in capsys.readouterr().err
    assert cli.main(["token", "--sub", "ops", "--scope", "tasks:read", "--ttl", "3600"]) == 0
    token = capsys.readouterr().out.strip()
    assert TokenVerifier(get_settings()).verify(token).client == "ops"


def test_a_lowered_maximum_ttl_refuses_the_longer_tokens_already_out() -> None:
    settings = make_settings("postgresql+asyncpg://unused/db")
    long_lived = mint_token(settings, "billing", ["tasks:write"], ttl=7 * DAY)
    strict = make_settings("postgresql+asyncpg://unused/db", token_max_ttl_seconds=DAY)
    with pytest.raises(Unauthorized, match="lifetime"):
        TokenVerifier(strict).verify(long_lived)
    assert TokenVerifier(settings).verify(long_lived).client == "billing"


def test_a_weak_previous_secret_is_refused_like_a_weak_current_one() -> None:
    """Finding 11.9: `HERALD_JWT_PREVIOUS_SECRET=x` was accepted, and tokens signed with it."""
    for weak in ("weak-previous", "y" * 31):
        with pytest.raises(ValueError, match="HERALD_JWT_PREVIOUS_SECRET") as excinfo:
            make_settings("postgresql+asyncpg://unused/db", jwt_previous_secret=weak)
        assert weak not in str(excinfo.value).replace("HERALD_JWT_PREVIOUS_SECRET", "")
    with pytest.raises(ValueError, match="HERALD_JWT_SECRET"):
        make_settings("postgresql+asyncpg://unused/db", jwt_secret="z" * 31)
    settings = make_settings("postgresql+asyncpg://unused/db", jwt_previous_secret="p" * 32)
    token = jwt.encode(_claims(), "p" * 32, "HS256")
    assert TokenVerifier(settings).verify(token).client == "billing"


def test_herald_api_refuses_to_start_without_a_secret(
    env_settings: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env_settings.setenv("HERALD_JWT_SECRET", "short")
    get_settings.cache_clear()
    assert cli.main(["api", "--port", "0"]) == 2
    assert "HERALD_JWT_SECRET" in capsys.readouterr().err


def test_rotation_accepts_the_retired_key_until_it_is_removed() -> None:
    old_secret, new_secret = "old-secret-" + "o" * 32, "new-secret-" + "n" * 32
    before = make_settings("postgresql+asyncpg://unused/db", jwt_secret=old_secret)
    old_token = mint_token(before, "billing", ["tasks:write"])
    during = make_settings(
        "postgresql+asyncpg://unused/db", jwt_secret=new_secret, jwt_previous_secret=old_secret
    )
    new_token = mint_token(during, "billing", ["tasks:read"])
    assert jwt.get_unverified_claims(new_token)["scope"] == "tasks:read"
    verifier = TokenVerifier(during)
    assert verifier.verify(old_token).scopes == {"tasks:write"}
    assert verifier.verify(new_token).scopes == {"tasks:read"}
    # The retired key still needs the right claims, and a third key gets nothing.
    with pytest.raises(Unauthorized, match="audience"):
        verifier.verify(jwt.encode(_claims(aud="other"), old_secret, "HS256"))
    with pytest.raises(Unauthorized, match="Signature"):
        verifier.verify(jwt.encode(_claims(), "third-secret-" + "t" * 32, "HS256"))
    # Rotation over: the old token is refused, the new one passes.
    after = TokenVerifier(make_settings("postgresql+asyncpg://unused/db", jwt_secret=new_secret))
    with pytest.raises(Unauthorized):
        after.verify(old_token)
    assert after.verify(new_token).client == "billing"


def test_rs256_rotation_accepts_the_previous_public_key_only_for_rs256() -> None:
    old_private, old_public = _rsa_pair()
    new_private, new_public = _rsa_pair()
    common = {"jwt_algorithm": "RS256", "jwt_secret": ""}
    old = make_settings(
        "postgresql+asyncpg://unused/db",
        jwt_public_key=old_public,
        jwt_private_key=old_private,
        **common,
    )
    during = make_settings(
        "postgresql+asyncpg://unused/db",
        jwt_public_key=new_public,
        jwt_private_key=new_private,
        jwt_previous_public_key=old_public,
        **common,
    )
    verifier = TokenVerifier(during)
    assert verifier.verify(mint_token(old, "ops", ["tasks:manage"])).client == "ops"
    assert verifier.verify(mint_token(during, "ops", ["tasks:read"])).scopes == {"tasks:read"}
    # An HS256 token keyed with the retired public key's PEM is no better than with the new one.
    header, payload = _b64({"alg": "HS256", "typ": "JWT"}), _b64(_claims())

    sig = hmac.new(old_public.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(Unauthorized):
        verifier.verify(f"{header}.{payload}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}")
    with pytest.raises(ValueError, match="PREVIOUS_SECRET"):
        make_settings(
            "postgresql+asyncpg://unused/db", jwt_previous_secret="x" * 32, **common,
            jwt_public_key=new_public,
        )  # fmt: skip
