"""Recipients (docs/recipients.md): deep links, bindings, and the updates Herald stored.

- `POST /api/recipients/{external_id}/link`: a one-time `https://t.me/<bot>?start=<code>`
  link; when the person opens it and presses Start, the chat is bound.
- `GET /api/recipients/{external_id}`: the binding and its state; `DELETE` unbinds.
- `GET /api/recipients/{external_id}/events`: the events sent to the producer about this
  recipient (`message.received`, `recipient.linked`, ...), each with its attempts.
- `GET /api/updates`: the updates stored (a producer sees those of its recipients' chats;
  `tasks:read` sees all).

A producer (`tasks:write`) manages its own recipients: another client's are 404.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from herald.api.auth import SCOPE_MANAGE, SCOPE_READ, SCOPE_WRITE, Principal, PrincipalDep
from herald.api.body import parse_json, read_body
from herald.api.errors import NotFound, ServiceUnavailable, Unprocessable
from herald.api.openapi import ERRORS
from herald.api.responses import OrjsonResponse
from herald.api.schemas import EXTERNAL_ID_PATTERN, MAX_TEXT, CallbackEventList
from herald.api.state import GatewayState, gateway
from herald.callbacks.endpoints import recipient_events
from herald.chat_id import ChatId
from herald.config import Settings
from herald.db import recipients as repo
from herald.db.updates import list_updates
from herald.telegram.sender import make_bot

router = APIRouter(tags=["recipients"])

ExternalIdPath = Annotated[str, Path(pattern=EXTERNAL_ID_PATTERN)]
# 32 URL-safe characters (192 bits): unguessable, within Telegram's 64 for a start
# parameter, and of its alphabet (A-Z, a-z, 0-9, _ and -).
CODE_BYTES = 24


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    welcome: str | None = Field(
        None, min_length=1, max_length=MAX_TEXT, description="instead of the client's welcome"
    )
    ttl_seconds: int | None = Field(None, ge=60, le=90 * 24 * 3600)


class LinkOut(BaseModel):
    external_id: str
    link: str = Field(description="https://t.me/<bot>?start=<code>: one use, until expires_at")
    code: str
    expires_at: str


class RecipientOut(BaseModel):
    external_id: str
    chat_id: int | str
    state: str = Field(description="active, unsubscribed (/stop) or blocked")
    subscribed: bool
    blocked: bool
    blocked_reason: str | None
    migrated_to: int | str | None
    bound_at: str
    updated_at: str


def _writer(principal: Principal) -> str:
    principal.require_any(SCOPE_WRITE)
    return principal.client


def welcome_text(settings: Settings, client: str) -> str:
    """The client's welcome message (HERALD_RECIPIENT_WELCOME), or Herald's default."""
    texts = settings.recipient_welcome
    text = texts.get(client) or texts.get("*")
    if text is None:
        text = "You will get notifications from {client} here. Send /stop to stop them."
    return text.replace("{client}", client)


async def bot_username(gw: GatewayState) -> str:
    """HERALD_BOT_USERNAME, or getMe's answer, asked once per process."""
    if gw.settings.bot_username:
        return gw.settings.bot_username
    if gw.bot_username:
        return gw.bot_username
    if not gw.settings.bot_token:
        raise ServiceUnavailable(
            "no bot configured: set HERALD_BOT_TOKEN (or HERALD_BOT_USERNAME)",
            code="bot_unknown",
        )
    bot = make_bot(gw.settings, connections=1)
    try:
        me = await bot.get_me()
    except Exception:
        raise ServiceUnavailable(
            "Telegram did not say the bot's username (getMe); retry, or set HERALD_BOT_USERNAME",
            code="bot_unknown",
            headers={"Retry-After": "5"},
        ) from None
    finally:
        await bot.session.close()
    if not me.username:
        raise ServiceUnavailable("the bot has no username", code="bot_unknown")
    gw.bot_username = me.username
    return me.username


@router.post(
    "/api/recipients/{external_id}/link",
    status_code=201,
    response_model=LinkOut,
    responses=ERRORS,
    summary="A one-time deep link that binds this recipient to the chat that opens it",
)
async def create_link(
    external_id: ExternalIdPath, principal: PrincipalDep, request: Request
) -> Response:
    gw = gateway(request)
    client = _writer(principal)
    body = await read_body(request, gw.settings.max_body_bytes)
    link_in = parse_json(LinkIn, body) if body.strip() else LinkIn()
    username = await bot_username(gw)
    code = secrets.token_urlsafe(CODE_BYTES)
    expires = await repo.create_link(
        gw.pool,
        gw.settings.bot_id,
        client,
        external_id,
        code,
        link_in.welcome or welcome_text(gw.settings, client),
        link_in.ttl_seconds or gw.settings.recipient_link_ttl_seconds,
    )
    out = {
        "external_id": external_id,
        "link": f"https://t.me/{username}?start={code}",
        "code": code,
        "expires_at": expires.isoformat(),
    }
    return OrjsonResponse(out, status_code=201)


def _not_found(external_id: str) -> NotFound:
    return NotFound(
        f"recipient {external_id!r} is not bound", code="recipient_unknown",
        details={"external_id": external_id},
    )  # fmt: skip


def recipient_json(row: dict[str, Any]) -> dict[str, Any]:
    state = "blocked" if row["blocked"] else "active" if row["subscribed"] else "unsubscribed"
    migrated = row["migrated_to"]
    return {
        "external_id": row["external_id"],
        "chat_id": ChatId(row["chat_id"]).ref,
        "state": state,
        "subscribed": row["subscribed"],
        "blocked": row["blocked"],
        "blocked_reason": row["blocked_reason"],
        "migrated_to": ChatId(migrated).ref if migrated else None,
        "bound_at": row["bound_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


@router.get(
    "/api/recipients/{external_id}",
    response_model=RecipientOut,
    responses=ERRORS,
    summary="A recipient's binding and state",
)
async def get_recipient(
    external_id: ExternalIdPath, principal: PrincipalDep, request: Request
) -> Response:
    gw = gateway(request)
    row = await repo.read_recipient(gw.pool, gw.settings.bot_id, _writer(principal), external_id)
    if row is None:
        raise _not_found(external_id)
    return OrjsonResponse(recipient_json(row))


@router.delete(
    "/api/recipients/{external_id}",
    responses=ERRORS,
    summary="Unbind a recipient: tasks naming it get 422 recipient_unknown until it links again",
)
async def delete_recipient(
    external_id: ExternalIdPath, principal: PrincipalDep, request: Request
) -> Response:
    gw = gateway(request)
    client = _writer(principal)
    if not await repo.delete_recipient(gw.pool, gw.settings.bot_id, client, external_id):
        raise _not_found(external_id)
    return OrjsonResponse({"external_id": external_id, "unbound": True})


@router.get(
    "/api/recipients/{external_id}/events",
    response_model=CallbackEventList,
    responses=ERRORS,
    summary="The events sent about a recipient (the latest, oldest first), with their attempts",
)
async def list_recipient_events(
    external_id: ExternalIdPath,
    principal: PrincipalDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Empty for a recipient of another client, or one whose client takes no updates:
    a producer's recipients are its own namespace, as with the other recipient routes."""
    client = _writer(principal)
    events = await recipient_events(gateway(request).pool, client, external_id, limit)
    return OrjsonResponse({"items": [asdict(e) for e in events]})


@router.get("/api/updates", responses=ERRORS, summary="Telegram updates stored, oldest first")
async def get_updates(
    principal: PrincipalDep,
    request: Request,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="the last id seen")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    chat_id: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str | None, Query(max_length=64, description="message, ...")] = None,
) -> Response:
    gw = gateway(request)
    if principal.has(SCOPE_READ) or principal.has(SCOPE_MANAGE):
        client = None
    else:
        client = _writer(principal)
    try:
        chat = str(ChatId.parse(chat_id)) if chat_id is not None else None
    except ValueError:
        raise Unprocessable("chat_id must be an integer or @channelusername") from None
    rows = await list_updates(
        gw.pool, gw.settings.bot_id, after=after, chat_id=chat, kind=kind, client=client,
        limit=limit,
    )  # fmt: skip
    items = [
        {
            "id": r.id,
            "update_id": r.update_id,
            "kind": r.kind,
            "chat_id": ChatId(r.chat_id).ref if r.chat_id else None,
            "received_at": r.received_at.isoformat(),
            "update": r.payload,
        }
        for r in rows
    ]
    return OrjsonResponse({"items": items, "last_id": rows[-1].id if rows else after})
