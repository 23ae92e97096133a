"""Bulk actions: on the tasks ticked in the list, or on everything the filter matches.

Three steps. The list's form posts to `/console/bulk/confirm`, which counts what would
change and says so ("Resend 2,341 failed tasks of billing created since ..."), with a
warning when uncertain tasks would be resent. Confirming posts to `/console/bulk`, which
starts the job (`jobs.py`) and sends the browser to its page, where the progress bar
follows it until the result.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from herald.console.actions import ACTIONS, UNCERTAIN_RESEND_WARNING, Action
from herald.console.filters import FIELDS, ParsedFilter, parse_filter
from herald.console.jobs import BulkJobs, BulkSpec, read_job, valid_job_id
from herald.console.web import (
    BASE,
    ConsoleError,
    ConsoleRoute,
    core,
    field,
    manager_form,
    operator,
    page,
    redirect,
)
from herald.db import console as console_db
from herald.states import TaskStatus

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
MAX_SELECTED = 500


def _selected(form: dict[str, list[str]]) -> list[int]:
    ids = sorted({int(v) for v in form.get("id", []) if v.isdigit() and 0 < int(v) < 2**63})
    if len(ids) > MAX_SELECTED:
        raise ConsoleError(
            422, "Too many", f"Select at most {MAX_SELECTED} tasks, or act on the filter."
        )
    return ids


def _action(form: dict[str, list[str]]) -> Action:
    action = ACTIONS.get(field(form, "action") or "")
    if action is None:
        raise ConsoleError(422, "Choose an action", "Choose what to do with the tasks.")
    return action


def _filter(form: dict[str, list[str]]) -> ParsedFilter:
    parsed = parse_filter(lambda name: field(form, name))
    if parsed.errors:
        raise ConsoleError(422, "Bad filter", "The filter has errors; correct it in the list.")
    return parsed


async def _plan(form: dict[str, list[str]], pool: Any) -> dict[str, Any]:
    """What a bulk form asks for, counted: the confirmation page shows it, and the job
    is started from the same fields."""
    action = _action(form)
    scope = field(form, "scope")
    if scope == "selected":
        ids = _selected(form)
        if not ids:
            raise ConsoleError(422, "Nothing selected", "Tick the tasks to act on first.")
        rows = await console_db.statuses_of(pool, ids)
        movable = [i for i, status in rows if action.allowed_from(status)]
        uncertain = sum(1 for _, status in rows if status == "uncertain")
        return {
            "action": action,
            "scope": scope,
            "ids": ids,
            "total": len(movable),
            "uncertain": uncertain if action.name == "resend" else 0,
            "description": f"{action.label} {len(movable):,} of the {len(ids):,} selected tasks",
            "parsed": None,
            "max_id": 0,
        }
    if scope != "filter":
        raise ConsoleError(422, "Choose the tasks", "Act on the selected tasks or the filter.")
    parsed = _filter(form)
    max_id_field = field(form, "max_id") or ""
    max_id = int(max_id_field) if max_id_field.isdigit() else await console_db.max_task_id(pool)
    total = await console_db.count_movable(pool, parsed.filter, action.target, max_id)
    uncertain = 0
    if action.name == "resend" and parsed.filter.status in (None, "uncertain"):
        uncertain = await console_db.count_movable(
            pool, _only_uncertain(parsed), action.target, max_id
        )
    return {
        "action": action,
        "scope": scope,
        "ids": [],
        "total": total,
        "uncertain": uncertain,
        "description": f"{action.label} all {total:,} {parsed.describe(action.sources)}",
        "parsed": parsed,
        "max_id": max_id,
    }


def _only_uncertain(parsed: ParsedFilter) -> console_db.ConsoleFilter:
    return replace(parsed.filter, status=TaskStatus.UNCERTAIN)


@router.post(f"{BASE}/bulk/confirm")
async def bulk_confirm(request: Request) -> Response:
    session, form = await manager_form(request)
    plan = await _plan(form, core(request).pool)
    return page(
        request,
        "bulk_confirm.html",
        {**plan, "fields": FIELDS, "warning": UNCERTAIN_RESEND_WARNING, "csrf": session.csrf},
    )


@router.post(f"{BASE}/bulk")
async def bulk_start(request: Request) -> Response:
    session, form = await manager_form(request)
    gw = core(request)
    plan = await _plan(form, gw.pool)
    parsed: ParsedFilter | None = plan["parsed"]
    reason = (field(form, "reason") or "").strip()[:500] or None
    spec = BulkSpec(
        action=plan["action"],
        operator=session.actor,
        description=plan["description"],
        total=plan["total"],
        reason=reason,
        ids=plan["ids"] if plan["scope"] == "selected" else None,
        filter=parsed.filter if parsed is not None else None,
        max_id=plan["max_id"],
    )
    jobs: BulkJobs = request.app.state.console_jobs
    job_id = jobs.start(gw, spec)
    return redirect(f"{BASE}/bulk/{job_id}")


async def _job(request: Request, job_id: str) -> dict[str, Any]:
    gw = core(request)
    job = await read_job(gw.redis, gw.settings.queue_name, job_id) if valid_job_id(job_id) else None
    if job is None:
        raise ConsoleError(404, "No such bulk action", "It may have ended more than a week ago.")
    return job


@router.get(BASE + "/bulk/{job_id}")
async def bulk_page(job_id: str, request: Request) -> Response:
    await operator(request)
    return page(request, "bulk_job.html", {"job": await _job(request, job_id)})


@router.get(BASE + "/bulk/{job_id}/progress")
async def bulk_progress(job_id: str, request: Request) -> Response:
    await operator(request)
    return page(request, "_bulk_progress.html", {"job": await _job(request, job_id)})
