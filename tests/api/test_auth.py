"""JWT checks: every malformed, foreign or expired token is 401; a missing scope is 403."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from herald import cli
from herald.api.auth import TokenVerifier, mint_token
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


def _rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
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
    import hashlib
    import hmac

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
    import hashlib
    import hmac

    sig = hmac.new(old_public.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(Unauthorized):
        verifier.verify(f"{header}.{payload}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}")
    with pytest.raises(ValueError, match="PREVIOUS_SECRET"):
        make_settings(
            "postgresql+asyncpg://unused/db", jwt_previous_secret="x" * 32, **common,
            jwt_public_key=new_public,
        )  # fmt: skip
