"""`POST /telegram/webhook`: Telegram's updates in (docs/recipients.md).

Per call: the secret header compared in constant time, the body parsed once, then one
statement for an update that needs nothing more, or one transaction for one that binds,
blocks, unblocks, stops or migrates (herald.updates.take). The answer is an empty 200:
Telegram only needs to know the update arrived, and retries until it does. A wrong or
missing secret is 401 and reads nothing; a body that is not an update is 400 or 422 and
stores nothing (Telegram never sends one).
"""

from __future__ import annotations

import hmac

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from herald.api.body import MalformedJson, read_body
from herald.api.errors import NotFound, Unauthorized, Unprocessable
from herald.api.openapi import ERRORS
from herald.api.routing import RawRoute
from herald.api.state import gateway
from herald.metrics import UPDATES_RECEIVED
from herald.updates.read import read_update
from herald.updates.take import take_update

router = APIRouter(tags=["telegram"], route_class=RawRoute)

SECRET_HEADER = "x-telegram-bot-api-secret-token"


@router.post(
    "/telegram/webhook",
    summary="Telegram's updates (setWebhook points here)",
    status_code=200,
    responses=ERRORS,
)
async def telegram_webhook(request: Request) -> Response:
    gw = gateway(request)
    secret = gw.settings.webhook_secret
    if not secret:
        raise NotFound("the Telegram webhook is off: HERALD_WEBHOOK_SECRET is not set")
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        UPDATES_RECEIVED.labels(result="refused").inc()
        raise Unauthorized(
            "wrong or missing X-Telegram-Bot-Api-Secret-Token", code="webhook_secret_invalid"
        )
    body = await read_body(request, gw.settings.max_body_bytes)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedJson("the body is not valid JSON") from None
    update = read_update(data)
    # PostgreSQL's jsonb cannot hold U+0000; Telegram never sends it.
    if update is None or b"\\u0000" in body:
        raise Unprocessable("the body is not a Telegram update", code="invalid_update")
    taken = await take_update(
        gw.pool,
        gw.settings.bot_id,
        update,
        body.decode(),
        max_attempts=gw.settings.max_attempts,
    )
    UPDATES_RECEIVED.labels(result="stored" if taken.stored else "repeated").inc()
    if taken.due:
        await gw.enqueuer.enqueue(taken.due, None)
    return Response(status_code=200)
