"""/metrics costs no database query: the task gauges come from a background refresh.

The gateway reaches PostgreSQL through a TCP relay the test can cut. Once cut, a scrape
still answers at once with the last values it refreshed, and says how old they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from sqlalchemy.engine import make_url

from herald.api.app import create_app
from herald.api.auth import mint_token
from tests.api.conftest import TEXT_TASK, RecordingQueue, running
from tests.conftest import make_settings


class Relay:
    """Forwards TCP connections to PostgreSQL until `cut()` drops them all."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()


def _value(text: str, series: str) -> float:
    line = next(ln for ln in text.splitlines() if ln.startswith(series + " "))
    return float(line.split()[1])


@contextlib.asynccontextmanager
async def relayed(database_url: str) -> AsyncIterator[tuple[Relay, str]]:
    url = make_url(database_url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    port = await relay.start()
    try:
        yield relay, url.set(port=port).render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(Exception):
            await relay.cut()


async def test_a_scrape_answers_from_the_last_refresh_without_the_database(
    database_url: str,
) -> None:
    async with relayed(database_url) as (relay, through_relay):
        settings = make_settings(through_relay, metrics_refresh_seconds=0.2)
        app = create_app(settings, queue=RecordingQueue())
        async with running(app) as client:
            await app.state.gateway.pool.execute("TRUNCATE task_events, tasks CASCADE")
            auth = {"Authorization": f"Bearer {mint_token(settings, 'billing', ['tasks:write'])}"}
            for key in ("a", "b", "c"):
                headers = {**auth, "Idempotency-Key": key}
                response = await client.post("/api/tasks", json=TEXT_TASK, headers=headers)
                assert response.status_code == 201
            deadline = time.monotonic() + 10
            while True:  # the first refresh runs at start-up, in the background
                text = (await client.get("/metrics")).text
                if 'herald_tasks{status="pending"} 3.0' in text:
                    break
                assert time.monotonic() < deadline, text
                await asyncio.sleep(0.05)
            refreshed = _value(text, "herald_tasks_refreshed_timestamp_seconds")
            assert time.time() - 10 < refreshed <= time.time()

            await relay.cut()  # PostgreSQL is now unreachable from the gateway
            await asyncio.sleep(0.5)  # two refreshes fail meanwhile
            for _ in range(5):
                started = time.monotonic()
                response = await asyncio.wait_for(client.get("/metrics"), 5)
                assert time.monotonic() - started < 1.0  # no query, no connect attempt
                assert response.status_code == 200
                assert 'herald_tasks{status="pending"} 3.0' in response.text
                assert _value(response.text, "herald_tasks_due") == 3.0
                # The age tells an alert that the numbers are stale.
                stale = _value(response.text, "herald_tasks_refreshed_timestamp_seconds")
                assert stale == refreshed
