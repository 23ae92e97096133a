"""A lean route class for the hot path."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response


class RawRoute(APIRoute):
    """Calls `endpoint(request)` directly; the endpoint returns its own Response.

    FastAPI's handler would solve dependencies (parsing query parameters and headers
    into models) and serialize a return value through the response model; the intake
    endpoints parse their body once from bytes and render with orjson, so that work is
    pure overhead on the path every task takes. The OpenAPI document is unaffected:
    it comes from the route's declared models, not from this handler.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            response: Response = await endpoint(request)
            return response

        return handler
