"""The baseline for the intake benchmark: a minimal hand-written FastAPI + asyncpg endpoint.

It validates a small body and runs one `INSERT ... ON CONFLICT DO NOTHING RETURNING` into
the same `tasks` table, and nothing else: no auth, no audit event, no enqueue, no replay.
Herald's `POST /api/tasks` is measured against it (bench/intake.py).

    BASELINE_DSN=postgresql://postgres@127.0.0.1/db uvicorn bench.baseline_app:app
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
    pool = await asyncpg.create_pool(os.environ["BASELINE_DSN"], min_size=1, max_size=20)
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
