"""Reliability fixtures: a live `herald api` process over the session's database."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis

from herald.api.auth import mint_token
from tests.conftest import REDIS_URL, TEST_JWT_SECRET, make_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live_api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`herald api` as a subprocess on a free port; its base URL."""
    queue_name = f"herald:test:{secrets.token_hex(4)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(
        HERALD_DATABASE_URL=database_url,
        HERALD_REDIS_URL=REDIS_URL,
        HERALD_QUEUE_NAME=queue_name,
        HERALD_JWT_SECRET=TEST_JWT_SECRET,
        HERALD_LOG_LEVEL="WARNING",
    )
    port = _free_port()
    log: Path = tmp_path_factory.mktemp("api") / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "herald.cli", "api", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"herald api did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base_url
    finally:
        proc.terminate()
        proc.wait(10)
        redis = Redis.from_url(REDIS_URL)
        redis.delete(queue_name)
        redis.close()


@pytest.fixture(scope="module")
def all_scopes_token(database_url: str) -> str:
    settings = make_settings(database_url)
    return mint_token(settings, "fuzzer", ["tasks:write", "tasks:read", "tasks:manage"])
