"""API errors: one base class carrying its HTTP status and code, one envelope.

```
ApiError                          {"error": {"code", "message", "details"}}
 +-- MalformedJson        400     a body that is not JSON (api/body.py)
 +-- InvalidCursor        400     a page cursor Herald did not make (api/views.py)
 +-- Unauthorized         401     no, bad, expired or foreign token
 +-- Forbidden            403     a valid token without the scope
 +-- NotFound             404     no such task, or another client's
 +-- Conflict             409     a transition the state machine does not allow
 +-- PayloadTooLarge      413     body over `max_body_bytes`
 +-- Unprocessable        422     bad input; `idempotency_key_reused`
 +-- TooManyRequests      429     a producer over its intake quota (Retry-After)
 +-- ServiceUnavailable   503     backlog over its bound, or a dependency down (Retry-After)
```
Transient database errors (PostgreSQL restarting or unreachable, a deadlock victim) also
answer 503 with Retry-After; anything else unexpected is a 500 `internal_error`. Where
these stand among Herald's other errors: docs/architecture.md, "Errors".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from herald.api.responses import OrjsonResponse
from herald.markup import ParseEntitiesError

log = structlog.get_logger(__name__)


class ApiError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.details = details
        self.headers = headers

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message, self.details, self.headers)


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "transition_not_allowed"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class Unprocessable(ApiError):
    status = 422
    code = "validation_error"


class TooManyRequests(ApiError):
    status = 429
    code = "quota_exceeded"


class ServiceUnavailable(ApiError):
    status = 503
    code = "unavailable"


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return OrjsonResponse(body, status_code=status, headers=headers)


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors without the echoed input (it may be huge, or not JSON at all).

    Markup Telegram would refuse also gets `offset`: where in the field's text, in
    characters, the parser found the problem.
    """
    details = []
    for err in errors:
        detail = {
            "loc": list(err.get("loc", ())),
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        refusal = (err.get("ctx") or {}).get("error")
        if isinstance(refusal, ParseEntitiesError):
            detail["msg"] = f"can't parse entities: {refusal.reason}"
            detail["type"] = "markup_invalid"
            detail["offset"] = refusal.offset
        details.append(detail)
    return details


# Errors after which the same request may succeed a moment later.
TRANSIENT_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
    OSError,
)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = validation_details(exc.errors())
        return error_response(422, "validation_error", "the request is invalid", details)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), None, exc.headers)

    async def on_database_unavailable(request: Request, exc: Exception) -> Response:
        # PostgreSQL restarting, unreachable, out of connections, or a deadlock victim:
        # the request may be retried as it is (intake is idempotent by its key).
        log.warning("database_unavailable", path=request.url.path, error=repr(exc))
        return error_response(
            503,
            "database_unavailable",
            "the database is not answering; retry the request",
            headers={"Retry-After": "1"},
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", path=request.url.path)
        return error_response(500, "internal_error", "internal server error")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for transient in TRANSIENT_DATABASE_ERRORS:
        app.add_exception_handler(transient, on_database_unavailable)
    app.add_exception_handler(Exception, on_unexpected)
