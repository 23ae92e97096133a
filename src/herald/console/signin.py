"""Signing in with a token, and out.

The token arrives in a POST body only, never in a URL, so it stays out of the browser's
history, the access log and any Referer. `herald dev`'s one-click link carries it in the
URL's fragment (`/console/sign-in#token=...`), which browsers never send to a server: the
sign-in page's script (static/console.js) removes the fragment from the address bar and
the history entry, puts the token in the form and submits it.

The sign-in form is protected against login CSRF (another site signing the operator in as
someone else) by the Origin check and a double-submit token: a random value in a
short-lived cookie scoped to this page, and the same value in the form.
"""

from __future__ import annotations

import secrets
import time

import structlog
from fastapi import APIRouter, Request
from jose import jwt
from starlette.responses import Response

from herald.api.errors import ApiError
from herald.console.sessions import (
    COOKIE,
    COOKIE_PATH,
    SIGN_IN_COOKIE,
    clear_cookie,
    set_cookie,
)
from herald.console.web import (
    BASE,
    ConsoleRoute,
    SignInRequired,
    checked_form,
    core,
    field,
    operator,
    page,
    redirect,
    sessions,
)

log = structlog.get_logger(__name__)
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

SIGN_IN_PATH = f"{BASE}/sign-in"
SIGN_IN_FORM_SECONDS = 3600


def _next(value: str | None) -> str:
    """Only a console path: never another site (an open redirect)."""
    if value and value.startswith(BASE) and not value.startswith("//") and "\\" not in value:
        rest = value[len(BASE) :]
        if rest == "" or rest[0] in "/?":
            return value
    return BASE


def _form(
    request: Request, target: str, *, error: str | None = None, status: int = 200
) -> Response:
    csrf = secrets.token_urlsafe(24)
    response = page(
        request,
        "sign_in.html",
        {
            "csrf": csrf,
            "next": target,
            "error": error,
            "signed_out": request.query_params.get("signed_out") == "1",
        },
        status=status,
    )
    set_cookie(response, request, SIGN_IN_COOKIE, csrf, SIGN_IN_FORM_SECONDS, SIGN_IN_PATH)
    return response


@router.get(SIGN_IN_PATH)
async def sign_in_page(request: Request) -> Response:
    try:
        await operator(request)
    except SignInRequired:
        return _form(request, _next(request.query_params.get("next")))
    return redirect(_next(request.query_params.get("next")))


@router.post(SIGN_IN_PATH)
async def sign_in(request: Request) -> Response:
    form = await checked_form(request, None)
    token = (field(form, "token") or "").strip()
    target = _next(field(form, "next"))
    if not token:
        return _form(request, target, error="Paste a token.", status=400)
    try:
        principal = core(request).verifier.verify(token)
    except ApiError as exc:
        # The verifier's reason (expired, bad signature...), never the token itself.
        return _form(request, target, error=f"This token was refused: {exc.message}.", status=401)
    if not (principal.has("tasks:read") or principal.has("tasks:manage")):
        return _form(
            request,
            target,
            error="This token has neither tasks:read nor tasks:manage: it cannot open the console.",
            status=403,
        )
    expires_at = float(jwt.get_unverified_claims(token)["exp"])
    store = sessions(request)
    await store.delete(request.cookies.get(COOKIE))  # a session signed in over ends here
    raw = await store.create(principal.client, principal.scopes, expires_at)
    log.info("console_signed_in", operator=principal.client, scopes=sorted(principal.scopes))
    response = redirect(target)
    set_cookie(response, request, COOKIE, raw, int(expires_at - time.time()), COOKIE_PATH)
    clear_cookie(response, request, SIGN_IN_COOKIE, SIGN_IN_PATH)
    return response


@router.post(f"{BASE}/sign-out")
async def sign_out(request: Request) -> Response:
    session = await operator(request)
    await checked_form(request, session)
    await sessions(request).delete(request.cookies.get(COOKIE))
    log.info("console_signed_out", operator=session.operator)
    response = redirect(f"{SIGN_IN_PATH}?signed_out=1")
    clear_cookie(response, request, COOKIE, COOKIE_PATH)
    return response
