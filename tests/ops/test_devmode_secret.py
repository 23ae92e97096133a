"""`herald dev` with the user's own JWT secret (a production `.env`, say) prints no token.

Finding 11.11: it printed a 7-day token with every scope, signed with that secret, into
the terminal (and any CI log). It now prints how to mint one instead, and that works.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys
from asyncio.subprocess import PIPE
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from jose import jwt

from tests.conftest import PG_SERVER, REDIS_URL
from tests.ops.devrun import DevRun
from tests.support.databases import drop_database

JWT_SHAPE = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A production-like configuration: the user's secret, PostgreSQL and Redis."""
    database_url = f"{PG_SERVER}/herald_devsecret_{secrets.token_hex(4)}"
    yield {
        "HERALD_JWT_SECRET": secrets.token_hex(32),
        "HERALD_DATABASE_URL": database_url,
        "HERALD_REDIS_URL": REDIS_URL,
        "HERALD_QUEUE_NAME": f"herald:test:{secrets.token_hex(4)}",
    }
    asyncio.run(drop_database(database_url))


async def test_dev_prints_no_token_signed_with_the_users_secret(
    tmp_path: Path, configured: dict[str, str]
) -> None:
    run = DevRun.start(tmp_path / ".herald", cwd=tmp_path, configured=configured)
    try:
        secret = configured["HERALD_JWT_SECRET"]
        for candidate in JWT_SHAPE.findall(run.banner):  # none, but say so if one appears
            claims = jwt.decode(candidate, secret, audience="herald", issuer="herald")
            pytest.fail(f"printed a token signed with the user's secret: {claims}")
        assert "herald token --sub dev" in run.banner
        assert not (tmp_path / ".herald" / "jwt_secret").exists()
        # The example as printed, pasted into a shell where `herald` and the .env's
        # variables are (plus curl's status code): the minted token is accepted.
        example = run.banner.split("Send a notification:\n", 1)[1].split("\n\n", 1)[0]
        example = example.replace("curl -sS", "curl -sS -w '\\n%{http_code}'")
        shell_env = {
            **os.environ,
            **configured,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        shell = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", example, stdout=PIPE, stderr=PIPE, env=shell_env
        )
        out, err = await asyncio.wait_for(shell.communicate(), 60)
        assert shell.returncode == 0, err
        assert out.decode().rsplit("\n", 1)[1] == "201", out
        async with httpx.AsyncClient(timeout=10) as http:
            anonymous = await http.get(run.api_url + "/api/tasks")
        assert anonymous.status_code == 401
    finally:
        run.stop()
