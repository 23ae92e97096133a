"""The operator console at `/console`, served by the gateway (docs/console.md).

Server-rendered pages (Jinja2 templates in `templates/`), a stylesheet and one small
script in `static/` (no build step, no CDN), for operators signed in with a token that
has `tasks:read` (look) or `tasks:manage` (act):

| module | pages |
|---|---|
| `signin.py` | sign in with a token, sign out (`sessions.py`: the session in Redis) |
| `overview.py` | counts, the last hour's chart (`chart.py`), backlog, queue, workers, uncertain |
| `tasks.py` | the filtered list (`filters.py`) and one task (`message.py` renders its text) |
| `act.py` | cancel, resend, resolve one task, each confirmed first (`actions.py`) |
| `bulk.py` | the same on a selection or a filter, as a job in batches (`jobs.py`) |
| `resolve.py` | uncertain tasks, one decision after another |
| `apidocs.py` | `/docs`, Swagger UI from the vendored copy in `static/swagger-ui/` |

`web.py` holds what they share: the session and scope guards, the CSRF and Origin checks
on every POST, the Content-Security-Policy, HTML error pages. The SQL is in
`herald/db/console.py`, or the API's own functions (`herald/db/tasks.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from herald.console import act, apidocs, bulk, overview, resolve, signin, tasks
from herald.console.jobs import BulkJobs
from herald.console.web import BASE, STATIC_DIR


def install_console(app: FastAPI) -> None:
    """Add the console and `/docs` to the gateway (built with `docs_url=None`)."""
    jobs = BulkJobs()
    app.state.console_jobs = jobs
    for module in (signin, overview, tasks, resolve, bulk, act, apidocs):
        app.include_router(module.router)
    app.mount(f"{BASE}/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    app.mount(
        apidocs.ASSETS_PATH,
        StaticFiles(directory=STATIC_DIR / "swagger-ui"),
        name="docs-static",
    )
    # Bulk jobs stop (and say so in their progress) before the gateway closes its pools.
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state:
            try:
                yield state
            finally:
                await jobs.aclose()

    app.router.lifespan_context = lifespan
