"""What `herald dev` embeds and what it takes from the configuration (no process started)."""

from __future__ import annotations

import threading
from pathlib import Path

from herald.config import Settings
from herald.devmode import DevStack, dev_secret, parse_args


def stack(tmp_path: Path, **configured: str) -> DevStack:
    args = parse_args(["--data-dir", str(tmp_path / "data")])
    settings = Settings(_env_file=None, **configured)  # type: ignore[call-arg, arg-type]
    return DevStack(args=args, settings=settings, stop_event=threading.Event())


def test_configured_stores_are_used_and_nothing_is_embedded(tmp_path: Path) -> None:
    dev = stack(
        tmp_path,
        database_url="postgresql+asyncpg://postgres@127.0.0.1:5432/herald_dev_choice",
        redis_url="redis://127.0.0.1:6379/0",
        jwt_secret="s" * 40,
    )
    (tmp_path / "data").mkdir()
    dev._start_stores()
    assert dev.postgres is None
    assert dev.redis is None
    # Only what dev mode decides itself is handed down; the rest comes from the environment.
    assert dev.overrides == {"dev_mode": "true", "log_json": "false"}
    assert not (tmp_path / "data" / "jwt_secret").exists()
    assert dev.child_settings().dev_mode is True


def test_the_generated_secret_is_kept(tmp_path: Path) -> None:
    first = dev_secret(tmp_path)
    assert len(first) >= 32
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o777 == 0o600
    assert dev_secret(tmp_path) == first
