"""The baseline for the intake benchmark: a minimal hand-written FastAPI + asyncpg endpoint.

It validates a small body and runs one `INSERT ... ON CONFLICT DO NOTHING RETURNING` into
the same `tasks` table, and nothing else: no auth, no audit event, no enqueue, no replay.
Herald's `POST /api/tasks` is measured against it (bench/intake.py).

    BASELINE_DSN=postgresql://postgres@127.0.0.1/db uvicorn bench.baseline_app:app

By default its pool keeps asyncpg's reset query on release, as a minimal endpoint would;
BASELINE_NO_RESET=1 skips it as Herald's pool does (one round trip less per request).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

INSERT = """
INSERT INTO tasks (client, idempotency_key, request_hash, chat_id, content, max_attempts)
VALUES ($1, $2, $3, $4, $5::text::jsonb, 5)
ON CONFLICT (client, idempotency_key) DO NOTHING
RETURNING id, status, created_at
"""


class TaskBody(BaseModel):
    chat_id: int
    text: str = Field(min_length=1, max_length=4096)


pool: Any = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global pool

    async def keep_session(conn: Any) -> None:
        pass

    reset = keep_session if os.environ.get("BASELINE_NO_RESET") == "1" else None
    pool = await asyncpg.create_pool(
        os.environ["BASELINE_DSN"], min_size=1, max_size=20, reset=reset
    )
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/api/tasks", status_code=201)
async def create(body: TaskBody, idempotency_key: str = Header()) -> dict[str, Any]:
    content = json.dumps({"text": body.text})
    row = await pool.fetchrow(INSERT, "baseline", idempotency_key, b"", str(body.chat_id), content)
    if row is None:
        raise HTTPException(409, "duplicate")
    return {"id": row["id"], "status": row["status"], "created_at": row["created_at"]}
