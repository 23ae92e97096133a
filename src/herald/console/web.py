"""What every console route shares: pages, guards (session, scope, CSRF, origin), headers.

A page is server-rendered HTML (Jinja2, autoescaped). Every response carries a
Content-Security-Policy that allows scripts and styles from Herald's own origin only, so
no inline script or style runs, whatever a task's text holds; pages are never cached.

State-changing requests are POSTs that pass three checks before anything happens:
the session's CSRF token in a hidden field (compared in constant time), an `Origin` (or,
without one, `Referer`) naming this host, and for every change the `tasks:manage` scope.
A `tasks:read` operator gets 403 from the server, whatever the page showed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from redis.exceptions import RedisError
from starlette.responses import HTMLResponse, RedirectResponse, Response

from herald.api.errors import TRANSIENT_DATABASE_ERRORS
from herald.api.state import GatewayState, gateway
from herald.console import formats
from herald.console.sessions import COOKIE, SIGN_IN_COOKIE, Session, SessionStore

log = structlog.get_logger(__name__)

BASE = "/console"
HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
FORM_LIMIT_BYTES = 64 * 1024

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _asset_version() -> str:
    digest = hashlib.sha256()
    for name in ("console.css", "console.js"):
        digest.update((STATIC_DIR / name).read_bytes())
    return digest.hexdigest()[:10]


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.globals["asset_version"] = _asset_version()
templates.filters.update(formats.FILTERS)


_UNAVAILABLE: tuple[type[Exception], ...] = (RedisError, *TRANSIENT_DATABASE_ERRORS)


class ConsoleError(Exception):
    """A page that says what went wrong, with its HTTP status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class SignInRequired(Exception):
    """No session (or an expired one): the handler redirects to the sign-in page."""


def core(request: Request) -> GatewayState:
    """The gateway's shared parts (pool, Redis, verifier, enqueuer, settings)."""
    return gateway(request)


def sessions(request: Request) -> SessionStore:
    gw = core(request)
    return SessionStore(gw.redis, gw.settings.queue_name)


def page(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    session: Session | None = request.scope.get("herald.console.session")
    html = templates.get_template(template).render(
        request=request,
        session=session,
        path=request.url.path,
        now=datetime.now(UTC),
        **(context or {}),
    )
    return HTMLResponse(html, status_code=status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def is_fragment(request: Request) -> bool:
    """A request of the page's script for a part of a page (the overview, a progress bar)."""
    return request.headers.get("x-console-fragment") == "1"


async def operator(request: Request) -> Session:
    """The signed-in operator; otherwise to the sign-in page (or 401 for a fragment)."""
    session = await sessions(request).get(request.cookies.get(COOKIE))
    if session is None or not session.can_read:
        raise SignInRequired
    request.scope["herald.console.session"] = session
    return session


def _same_origin(request: Request) -> bool:
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    if origin is None:
        origin = request.headers.get("referer")
        if origin is None:
            # No browser sends a form POST with neither; the CSRF token still decides.
            return request.headers.get("sec-fetch-site") in (None, "same-origin")
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null": a sandboxed frame, a data: page, a file
    default = {"http": ":80", "https": ":443"}[parts.scheme]
    return parts.netloc.removesuffix(default) == host.removesuffix(default)


async def read_form(request: Request) -> dict[str, list[str]]:
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise ConsoleError(415, "Not a form", "The console only takes its own forms.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT_BYTES:
            raise ConsoleError(413, "Too large", "The form was larger than the console takes.")
    form: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=2000)
    except (UnicodeDecodeError, ValueError):
        raise ConsoleError(400, "Bad form", "The form could not be read.") from None
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def field(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[-1] if values else None


async def checked_form(request: Request, session: Session | None) -> dict[str, list[str]]:
    """The form of a POST that passed the origin and CSRF checks.

    With a session, its token; before sign-in, the double-submit cookie's.
    """
    if not _same_origin(request):
        log.warning("console_cross_origin_post", path=request.url.path)
        raise ConsoleError(
            403, "Refused", "This form was sent from another site. Nothing was changed."
        )
    form = await read_form(request)
    given = field(form, "csrf")
    if session is not None:
        ok = session.csrf_ok(given)
    else:
        expected = request.cookies.get(SIGN_IN_COOKIE)
        ok = bool(expected) and given == expected
    if not ok:
        log.warning("console_csrf_refused", path=request.url.path)
        raise ConsoleError(
            403,
            "Refused",
            "This form has expired or did not come from this console. Nothing was changed;"
            " reload the page and try again.",
        )
    return form


async def manager_form(request: Request) -> tuple[Session, dict[str, list[str]]]:
    """A state-changing request: signed in, origin and CSRF checked, `tasks:manage`."""
    session = await operator(request)
    form = await checked_form(request, session)
    if not session.can_manage:
        log.warning("console_read_only_refused", operator=session.operator, path=request.url.path)
        raise ConsoleError(
            403,
            "Read-only",
            "Your token has tasks:read, which shows everything and changes nothing."
            " Ask for a token with tasks:manage to act on tasks.",
        )
    return session, form


def _secure(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class ConsoleRoute(APIRoute):
    """Console routes answer in HTML, errors included, with the console's headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                if is_fragment(request) or request.method != "GET":
                    response = page(
                        request,
                        "error.html",
                        {"title": "Signed out", "message": "Your session has ended."},
                        status=401,
                    )
                else:
                    target = request.url.path + (
                        f"?{request.url.query}" if request.url.query else ""
                    )
                    response = redirect(f"{BASE}/sign-in?next={quote(target, safe='')}")
            except RequestValidationError:
                # A path that is not one of the console's (a task id that is no number).
                response = page(
                    request,
                    "error.html",
                    {"title": "Not found", "message": "The console has no such page."},
                    status=404,
                )
            except ConsoleError as exc:
                response = page(
                    request,
                    "error.html",
                    {"title": exc.title, "message": exc.message},
                    status=exc.status,
                )
            except _UNAVAILABLE as exc:
                log.warning("console_store_unavailable", error=type(exc).__name__)
                response = page(
                    request,
                    "error.html",
                    {
                        "title": "Unavailable",
                        "message": "PostgreSQL or Redis is not answering. Try again shortly.",
                    },
                    status=503,
                )
            return _secure(response)

        return route
