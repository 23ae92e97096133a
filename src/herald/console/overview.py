"""The overview: the state of the service at a glance, refreshed by the page every few seconds.

What it costs (docs/console.md): the counts by status and the due backlog are the values
the gateway already reads in the background for /metrics (`herald_tasks`,
`herald_tasks_due`), so a look costs no count; then one PostgreSQL snapshot of four
indexed statements (`db.console.overview`), and in Redis the queue's length and the
workers' heartbeats (`herald.fleet`, as `herald status` reads them).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import REGISTRY
from starlette.responses import Response

from herald.console.chart import per_minute_chart
from herald.console.message import preview
from herald.console.web import BASE, ConsoleRoute, core, operator, page, redirect
from herald.db import console as console_db
from herald.fleet import read_beats
from herald.states import TaskStatus

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
REFRESH_SECONDS = 5


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def task_counts() -> dict[str, Any]:
    """The gateway's last reading of the counts (herald.metrics), and when it began."""
    refreshed = _gauge("herald_tasks_refreshed_timestamp_seconds")
    if not refreshed:
        return {"by_status": None, "due": None, "as_of": None, "age": None}
    by_status = {s.value: int(_gauge("herald_tasks", status=s.value) or 0) for s in TaskStatus}
    return {
        "by_status": by_status,
        "due": int(_gauge("herald_tasks_due") or 0),
        "as_of": refreshed,
        "age": max(0.0, time.time() - refreshed),
    }


async def overview_context(request: Request) -> dict[str, Any]:
    gw = core(request)
    queue = gw.settings.queue_name
    data, beats, depth = await asyncio.gather(
        console_db.overview(gw.pool), read_beats(gw.redis, queue), gw.redis.llen(queue)
    )
    oldest = data.oldest_pending
    return {
        "counts": task_counts(),
        "chart": per_minute_chart(data.per_minute),
        "reasons": data.reasons,
        "oldest_pending": oldest,
        "uncertain_total": data.uncertain_total,
        "uncertain": [(row, preview(row["content"])) for row in data.uncertain],
        "workers": beats,
        "queue_name": queue,
        "queue_depth": int(depth),
        "refresh_seconds": REFRESH_SECONDS,
        "statuses": [s.value for s in TaskStatus],
    }


@router.get(BASE)
async def overview_page(request: Request) -> Response:
    await operator(request)
    return page(request, "overview.html", await overview_context(request))


@router.get(f"{BASE}/")
async def overview_slash() -> Response:
    return redirect(BASE)


@router.get(f"{BASE}/overview/live")
async def overview_live(request: Request) -> Response:
    """The part of the overview the page's script swaps in, every REFRESH_SECONDS."""
    await operator(request)
    return page(request, "_overview_live.html", await overview_context(request))
