"""`herald api --access-log` (or HERALD_ACCESS_LOG) logs each request; without it, none.

Finding 11.12: the flag had no effect, every request was logged whatever it said, because
Herald's logging set-up re-enabled the access logger that uvicorn had switched off.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from herald.embedded import free_port
from tests.conftest import REDIS_URL, TEST_JWT_SECRET
from tests.ops.devrun import until
from tests.ops.herald_process import HERALD, herald_env


def requests_logged(
    database_url: str, cwd: Path, args: list[str], **variables: str
) -> list[dict[str, object]]:
    """Start `herald api ARGS`, send three requests, stop it: the access lines it logged."""
    port = free_port()
    env = herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_REDIS_URL=REDIS_URL,
        HERALD_JWT_SECRET=TEST_JWT_SECRET,
        HERALD_QUEUE_NAME=f"herald:test:{secrets.token_hex(4)}",
        **variables,
    )
    with (cwd / f"api-{port}.log").open("w+") as log:
        proc = subprocess.Popen(
            [HERALD, "api", "--port", str(port), *args], env=env, cwd=cwd, stderr=log
        )
        try:
            url = f"http://127.0.0.1:{port}"

            def healthy() -> bool | None:
                assert proc.poll() is None, "herald api exited"
                try:
                    return httpx.get(f"{url}/health", timeout=2).status_code == 200 or None
                except httpx.TransportError:
                    return None

            until(healthy, 60, "herald api")
            for i in range(3):
                httpx.get(f"{url}/health", params={"probe": i}, timeout=5)
        finally:
            proc.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal it stopped for once it has shut down cleanly.
            assert proc.wait(30) in {0, -signal.SIGTERM}
        log.seek(0)
        records = [json.loads(line) for line in log if line.startswith("{")]
    return [r for r in records if r.get("logger") == "uvicorn.access"]


def test_no_access_log_by_default(database_url: str, tmp_path: Path) -> None:
    assert requests_logged(database_url, tmp_path, []) == []


@pytest.mark.parametrize(
    ("args", "variables"),
    [
        (["--access-log", "--workers", "2"], {}),  # reaches uvicorn's worker processes too
        ([], {"HERALD_ACCESS_LOG": "true"}),
    ],
)
def test_access_log_when_asked(
    database_url: str, tmp_path: Path, args: list[str], variables: dict[str, str]
) -> None:
    lines = requests_logged(database_url, tmp_path, args, **variables)
    probes = [str(r["event"]) for r in lines if "probe=" in str(r["event"])]
    assert len(probes) == 3, lines
    assert all('"GET /health?probe=' in p and '" 200' in p for p in probes)
    assert all(r["service"] == "api" for r in lines)
