"""`POST /api/tasks` and `POST /api/tasks/batch`: the hot path.

Per request: the token (cached), the body parsed once by pydantic straight from bytes
(not FastAPI's parse-then-validate), one SQL statement (see herald.db.intake), the
response rendered by orjson, and the id pushed to the queue after the commit, coalesced
with other requests' ids.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from herald.api.auth import SCOPE_WRITE, Principal
from herald.api.body import parse_json, read_body
from herald.api.errors import ApiError, Unprocessable, validation_details
from herald.api.openapi import ERRORS, body_of, idempotency_header
from herald.api.responses import OrjsonResponse
from herald.api.routing import RawRoute
from herald.api.schemas import MAX_IDEMPOTENCY_KEY, BatchIn, BatchItem, BatchOut, TaskIn, TaskOut
from herald.api.state import GatewayState, correlation_id, gateway
from herald.api.views import task_json
from herald.db.intake import BatchStored, NewTask, insert_task, insert_tasks
from herald.db.models import NEW_TASK_DERIVED
from herald.metrics import INTAKE_REFUSED, TASKS_CREATED, TASKS_REPLAYED
from herald.states import CREATED

router = APIRouter(prefix="/api/tasks", tags=["intake"], route_class=RawRoute)


def _authorize(gw: GatewayState, request: Request) -> Principal:
    principal = gw.verifier.verify_header(request.headers.get("authorization"))
    principal.require_any(SCOPE_WRITE)
    return principal


# NewTask's fields past the derived ones are TaskIn's, taken as they are by one
# attrgetter call: this runs 500 times per batch request, where building a NewTask by
# keyword, or reordering values into it, showed in the batch's rate.
_AS_SENT = NewTask._fields[NEW_TASK_DERIVED:]
if not set(_AS_SENT) <= set(TaskIn.model_fields):  # pragma: no cover - a definition error
    raise TypeError(f"NewTask fields {_AS_SENT} must all be TaskIn fields")
_SENT = attrgetter(*_AS_SENT)


def _new_task(task: TaskIn, key: str, default_attempts: int) -> NewTask:
    content = task.content()
    attempts = task.max_attempts or default_attempts
    return NewTask(key, task.request_hash(content), content, attempts, *_SENT(task))


def _actor(principal: Principal) -> str:
    return f"{CREATED.actor}:{principal.client}"


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key")
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise Unprocessable(
            f"header Idempotency-Key is required: 1 to {MAX_IDEMPOTENCY_KEY} characters",
            code="idempotency_key_required",
        )
    return key


def _key_reused() -> ApiError:
    return Unprocessable(
        "this Idempotency-Key was used with a different request body",
        code="idempotency_key_reused",
    )


@router.post(
    "",
    status_code=201,
    summary="Create a task",
    response_model=TaskOut,
    responses={**ERRORS, 200: {"model": TaskOut, "description": "replayed (Idempotent-Replayed)"}},
    openapi_extra=body_of("TaskIn") | idempotency_header(),
)
async def create_task(request: Request) -> Response:
    gw = gateway(request)
    try:
        principal = _authorize(gw, request)
        key = _idempotency_key(request)
        task = parse_json(TaskIn, await read_body(request, gw.settings.max_body_bytes))
    except ApiError as exc:
        INTAKE_REFUSED.labels(reason=exc.code).inc()
        raise
    await gw.guard.admit(principal.client)
    cid = correlation_id(request)
    new = _new_task(task, key, gw.settings.max_attempts)
    created, stored = await insert_task(gw.pool, principal.client, new, cid, _actor(principal))
    if created:
        TASKS_CREATED.inc()
        if stored.enqueued_at is not None:
            await gw.enqueuer.enqueue([stored.id], cid)
        return OrjsonResponse(
            task_json(stored), status_code=201, headers={"Location": f"/api/tasks/{stored.id}"}
        )
    if stored.request_hash != new.request_hash:
        INTAKE_REFUSED.labels(reason="idempotency_key_reused").inc()
        raise _key_reused()
    TASKS_REPLAYED.inc()
    return OrjsonResponse(task_json(stored), headers={"Idempotent-Replayed": "true"})


@router.post(
    "/batch",
    summary="Create up to max_batch_items tasks, each with its own idempotency_key",
    response_model=BatchOut,
    responses=ERRORS,
    openapi_extra=body_of("BatchRequest"),
)
async def create_batch(request: Request) -> Response:
    gw = gateway(request)
    try:
        principal = _authorize(gw, request)
        batch = parse_json(BatchIn, await read_body(request, gw.settings.max_body_bytes))
        if len(batch.items) > gw.settings.max_batch_items:
            raise Unprocessable(
                f"at most {gw.settings.max_batch_items} items a batch",
                code="batch_too_large",
                details={"limit": gw.settings.max_batch_items},
            )
    except ApiError as exc:
        INTAKE_REFUSED.labels(reason=exc.code).inc()
        raise
    await gw.guard.admit(principal.client, cost=len(batch.items))
    cid = correlation_id(request)
    results: list[dict[str, Any]] = []
    first: dict[str, NewTask] = {}  # one insert per key; later duplicates compare to it
    for index, raw in enumerate(batch.items):
        key = raw.get("idempotency_key") if isinstance(raw, dict) else None
        try:
            item = BatchItem.model_validate(raw)
        except ValidationError as exc:
            err = {"code": "validation_error", "message": "the item is invalid"}
            err["details"] = validation_details(exc.errors())  # type: ignore[assignment]
            results.append(_result(index, key, "error", error=err))
            continue
        new = _new_task(item, item.idempotency_key, gw.settings.max_attempts)
        first.setdefault(new.idempotency_key, new)
        results.append(_result(index, item.idempotency_key, "undecided", new=new))

    stored = await insert_tasks(
        gw.pool, principal.client, list(first.values()), cid, _actor(principal)
    )
    counts = {"created": 0, "replayed": 0, "error": 0}
    due: list[int] = []
    for res in results:
        new = res.pop("new", None)
        if new is not None:
            _settle(res, new, first[new.idempotency_key], stored, due)
        counts[res["result"]] += 1
    TASKS_CREATED.inc(counts["created"])
    TASKS_REPLAYED.inc(counts["replayed"])
    if counts["error"]:
        INTAKE_REFUSED.labels(reason="batch_item").inc(counts["error"])
    await gw.enqueuer.enqueue(due, cid)
    body = {
        "created": counts["created"],
        "replayed": counts["replayed"],
        "refused": counts["error"],
        "results": results,
    }
    return OrjsonResponse(body)


def _result(index: int, key: Any, result: str, **extra: Any) -> dict[str, Any]:
    return {"index": index, "idempotency_key": key if isinstance(key, str) else None} | {
        "result": result,
        "id": None,
        "error": None,
        **extra,
    }


def _settle(
    res: dict[str, Any],
    new: NewTask,
    inserted: NewTask,
    stored: BatchStored,
    due: list[int],
) -> None:
    """Decide one item: created, replayed (same body as the stored task) or refused."""
    key = new.idempotency_key
    if key in stored.created:
        task_id, enqueue_now = stored.created[key]
        stored_hash = inserted.request_hash
        if new is inserted:  # a later item with the same key is a replay of it
            res.update(result="created", id=task_id)
            if enqueue_now:
                due.append(task_id)
            return
    else:
        task_id, stored_hash = stored.existing[key]
    if stored_hash == new.request_hash:
        res.update(result="replayed", id=task_id)
    else:
        err = _key_reused()
        res.update(result="error", error={"code": err.code, "message": err.message})
