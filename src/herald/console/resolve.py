"""Resolve uncertain tasks, one after another: the evidence, and the two answers.

The page shows the oldest uncertain task after the last one decided or skipped, what is
known of its last attempt (when it was claimed, by which worker, what came back), and two
forms, "delivered" and "failed", that post to the same action as the task page. The
page's script gives them the keys D and F, and S for skipping to the next.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from herald.console.actions import ACTIONS
from herald.console.tasks import task_context
from herald.console.web import BASE, ConsoleRoute, core, operator, page
from herald.db import console as console_db
from herald.db import tasks as repo

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def _last_attempt(events: list[Any], attempt: int) -> list[Any]:
    """The events of the task's last attempt, from its claim on."""
    return [e for e in events if e["attempt"] == attempt and e["from_status"] is not None]


@router.get(f"{BASE}/resolve")
async def resolve_page(request: Request) -> Response:
    await operator(request)
    raw_after = request.query_params.get("after", "0")
    after = int(raw_after) if raw_after.isdigit() and len(raw_after) < 19 else 0
    pool = core(request).pool
    row, remaining = await asyncio.gather(
        console_db.next_uncertain(pool, after), console_db.count_uncertain(pool)
    )
    context: dict[str, Any] = {
        "remaining": remaining,
        "done": ACTIONS.get(request.query_params.get("done", "")),
        "done_id": after if after else None,
        "task": None,
    }
    if row is not None:
        events = [e._asdict() for e in await repo.list_events(pool, row["id"])]
        context.update(task_context(row))
        context.update(
            {
                "evidence": _last_attempt(events, row["attempt"]),
                "delivered": ACTIONS["resolve-delivered"],
                "failed": ACTIONS["resolve-failed"],
            }
        )
    return page(request, "resolve.html", context)
