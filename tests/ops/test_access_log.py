"""`herald api --access-log` (or HERALD_ACCESS_LOG) logs each request; without it, none.

Finding 11.12: the flag had no effect, every request was logged whatever it said, because
Herald's logging set-up re-enabled the access logger that uvicorn had switched off.
"""

from __future__ import annotations

import json
import secrets
import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, TEST_JWT_SECRET
from tests.support.processes import herald_env, start_api


def requests_logged(
    database_url: str, cwd: Path, args: list[str], **settings: str
) -> list[dict[str, object]]:
    """Start `herald api ARGS`, send three requests, stop it: the access lines it logged."""
    env = herald_env(
        database_url=database_url,
        redis_url=REDIS_URL,
        jwt_secret=TEST_JWT_SECRET,
        queue_name=f"herald:test:{secrets.token_hex(4)}",
        **settings,
    )
    api, url = start_api(env, cwd, *args, timeout=60)
    try:
        for i in range(3):
            httpx.get(f"{url}/health", params={"probe": i}, timeout=5)
    finally:
        # uvicorn re-raises the signal it stopped for once it has shut down cleanly.
        assert api.stop(signal.SIGTERM, timeout=30) in {0, -signal.SIGTERM}
    records = [json.loads(line) for line in api.log().splitlines() if line.startswith("{")]
    return [r for r in records if r.get("logger") == "uvicorn.access"]


def test_no_access_log_by_default(database_url: str, tmp_path: Path) -> None:
    assert requests_logged(database_url, tmp_path, []) == []


@pytest.mark.parametrize(
    ("args", "variables"),
    [
        (["--access-log", "--workers", "2"], {}),  # reaches uvicorn's worker processes too
        ([], {"access_log": "true"}),
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
