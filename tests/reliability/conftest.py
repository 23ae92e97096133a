"""Reliability fixtures: a live `herald api` process over the session's database."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from redis import Redis

from herald.api.auth import mint_token
from tests.conftest import REDIS_URL, TEST_JWT_SECRET, make_settings
from tests.support.processes import herald_env, start_api


@pytest.fixture(scope="module")
def live_api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`herald api` as a subprocess on a free port; its base URL."""
    queue_name = f"herald:test:{secrets.token_hex(4)}"
    env = herald_env(
        database_url=database_url,
        redis_url=REDIS_URL,
        queue_name=queue_name,
        jwt_secret=TEST_JWT_SECRET,
        log_level="WARNING",
        # Deep links need the bot's username: without a bot, linking is a 503 bot_unknown.
        bot_username="herald_fuzz_bot",
    )
    api, base_url = start_api(env, tmp_path_factory.mktemp("api"))
    try:
        yield base_url
    finally:
        api.stop(timeout=10)
        redis = Redis.from_url(REDIS_URL)
        redis.delete(queue_name)
        redis.close()


@pytest.fixture(scope="module")
def all_scopes_token(database_url: str) -> str:
    settings = make_settings(database_url)
    return mint_token(settings, "fuzzer", ["tasks:write", "tasks:read", "tasks:manage"])
