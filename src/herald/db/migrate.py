"""`herald migrate`: create the database when it is missing, then `alembic upgrade head`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic.config import Config
from sqlalchemy.engine import make_url

from alembic import command
from herald.db.pool import asyncpg_dsn

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def alembic_config(database_url: str) -> Config:
    ini = PROJECT_ROOT / "alembic.ini"
    cfg = Config(str(ini))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


async def create_database_if_missing(database_url: str) -> bool:
    """Create the URL's database through the `postgres` maintenance database; True if created."""
    name = make_url(database_url).database
    if not name:
        raise ValueError("the database URL names no database")
    conn = await asyncpg.connect(asyncpg_dsn(database_url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:  # another migrate won the race
            return False
        return True
    finally:
        await conn.close()


def upgrade(database_url: str) -> None:
    """Create the database if needed and migrate it to head (synchronous; run outside a loop)."""
    asyncio.run(create_database_if_missing(database_url))
    command.upgrade(alembic_config(database_url), "head")


def main(argv: list[str]) -> int:
    import argparse

    from herald.config import get_settings

    parser = argparse.ArgumentParser(prog="herald migrate", description=__doc__)
    parser.parse_args(argv)
    upgrade(get_settings().database_url)
    return 0
