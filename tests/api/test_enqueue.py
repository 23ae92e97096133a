"""The task id goes to the queue only after the commit; a failed push loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from herald.api.app import create_app
from herald.api.auth import mint_token
from herald.broker import make_broker
from herald.queue import DELIVER_TASK_NAME
from tests.api.conftest import TEXT_TASK, Api, RecordingQueue, running
from tests.conftest import REDIS_URL, make_settings


async def test_enqueue_sees_the_committed_task(api: Api) -> None:
    seen: list[tuple[str, int]] = []

    async def check_committed(task_ids: Sequence[int]) -> None:
        # Another connection: only a committed row is visible to it.
        async with api.pool.acquire() as conn:
            for task_id in task_ids:
                row = await conn.fetchrow(
                    "SELECT status, (SELECT count(*) FROM task_events e WHERE e.task_id = t.id) n"
                    " FROM tasks t WHERE id = $1",
                    task_id,
                )
                seen.append((row["status"], row["n"]))

    api.queue.hook = check_committed
    resp = await api.post_task(TEXT_TASK, key="c")
    assert resp.status_code == 201
    assert seen == [("pending", 1)]


async def test_no_enqueue_when_the_transaction_rolls_back(api: Api) -> None:
    # Make the audit insert fail inside intake's statement: the task insert rolls back too.
    await api.pool.execute(
        """
        CREATE OR REPLACE FUNCTION refuse_event() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER refuse_event BEFORE INSERT ON task_events
        FOR EACH ROW EXECUTE FUNCTION refuse_event();
        """
    )
    try:
        resp = await api.post_task(TEXT_TASK, key="r")
        assert resp.status_code == 500
        assert resp.json()["error"]["code"] == "internal_error"
        batch = await api.client.post(
            "/api/tasks/batch",
            json={"items": [{"idempotency_key": "b", **TEXT_TASK}]},
            headers=api.auth(),
        )
        assert batch.status_code == 500
    finally:
        await api.pool.execute("DROP TRIGGER refuse_event ON task_events")
    assert await api.count() == 0
    assert api.queue.calls == []


async def test_failed_push_still_accepts_and_clears_enqueued_at(api: Api) -> None:
    async def redis_down(task_ids: Sequence[int]) -> None:
        raise ConnectionError("redis is down")

    api.queue.hook = redis_down
    resp = await api.post_task(TEXT_TASK, key="f")
    assert resp.status_code == 201
    row = await api.pool.fetchrow("SELECT status, enqueued_at FROM tasks")
    assert row["status"] == "pending"
    assert row["enqueued_at"] is None  # never handed over: the sweeper re-enqueues it


async def test_concurrent_requests_share_pushes(api: Api) -> None:
    responses = await asyncio.gather(*(api.post_task(TEXT_TASK, key=f"k{i}") for i in range(40)))
    assert all(r.status_code == 201 for r in responses)
    assert sorted(api.queue.ids) == sorted(r.json()["id"] for r in responses)
    # Each request keeps its own correlation id even when pushed together.
    by_id = {i: cid for hints in api.queue.calls for i, cid in hints}
    assert all(by_id[r.json()["id"]] == r.headers["x-request-id"] for r in responses)


async def test_real_broker_gets_one_taskiq_message_per_task(database_url: str) -> None:
    settings = make_settings(database_url)
    redis = Redis.from_url(REDIS_URL)
    try:
        app = create_app(settings)  # pushes to the Redis list the workers pop
        async with running(app) as client:
            token = mint_token(settings, "billing", ["tasks:write"])
            headers = {"Authorization": f"Bearer {token}"}
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/api/tasks",
                        json=TEXT_TASK,
                        headers={
                            **headers,
                            "Idempotency-Key": f"real-{i}",
                            "X-Request-ID": f"r{i}",
                        },
                    )
                    for i in range(5)
                )
            )
            broker = make_broker(settings)
            raw: list[bytes] = await redis.lrange(settings.queue_name, 0, -1)  # type: ignore[assignment]
            # What the worker will see: its broker's formatter reads our messages back.
            parsed = [broker.formatter.loads(m) for m in raw]
            ids = sorted(r.json()["id"] for r in responses)
            assert sorted(m.args[0] for m in parsed) == ids
            assert all(m.task_name == DELIVER_TASK_NAME and m.kwargs == {} for m in parsed)
            assert len({m.task_id for m in parsed}) == 5
        messages = [orjson.loads(m) for m in raw]
        assert sorted(m["args"][0] for m in messages) == sorted(r.json()["id"] for r in responses)
        assert {m["task_name"] for m in messages} == {DELIVER_TASK_NAME}
        assert sorted(m["labels"]["correlation_id"] for m in messages) == [
            f"r{i}" for i in range(5)
        ]
    finally:
        await redis.delete(settings.queue_name)
        await redis.aclose()


async def test_a_hanging_queue_delays_a_request_by_the_timeout_at_most(database_url: str) -> None:
    release = asyncio.Event()

    async def hang(task_ids: Sequence[int]) -> None:
        await release.wait()  # Redis accepted the connection and went silent

    queue = RecordingQueue(hook=hang)
    settings = make_settings(database_url, enqueue_timeout_seconds=0.2)
    app = create_app(settings, queue=queue)
    try:
        async with running(app) as client:
            pool = app.state.gateway.pool
            await pool.execute("TRUNCATE task_events, tasks")
            token = mint_token(settings, "billing", ["tasks:write"])
            headers = {"Authorization": f"Bearer {token}"}
            loop = asyncio.get_running_loop()
            started = loop.time()
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/api/tasks",
                        json=TEXT_TASK,
                        headers={**headers, "Idempotency-Key": f"h{i}"},
                    )
                    for i in range(3)
                )
            )
            assert loop.time() - started < 2.0  # not one timeout after another
            assert [r.status_code for r in responses] == [201] * 3
            await app.state.gateway.enqueuer.aclose()  # the push gave up and said so
            assert await pool.fetchval("SELECT count(*) FROM tasks WHERE enqueued_at IS NULL") == 3
    finally:
        release.set()
