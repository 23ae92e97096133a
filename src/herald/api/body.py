"""Reading and parsing request bodies: a size cap, and JSON errors told apart from bad fields."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from herald.api.errors import ApiError, PayloadTooLarge, Unprocessable, validation_details

M = TypeVar("M", bound=BaseModel)


class MalformedJson(ApiError):
    status = 400
    code = "malformed_json"


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body exceeds {limit} bytes", details={"limit": limit})
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds {limit} bytes", details={"limit": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _refuse_nul(body: bytes) -> None:
    """PostgreSQL stores no U+0000 in text or JSONB: refuse it here rather than fail there.

    Found by schemathesis (the insert raised, the client got a 500). JSON can carry the
    character only as the escape \\u0000, so bodies without that sequence skip the walk.
    """
    if b"\\u0000" not in body:
        return
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return  # reported as malformed JSON by the parse
    if _has_nul(data):
        raise Unprocessable(
            "strings may not contain the NUL character (U+0000)", code="invalid_character"
        )


def parse_json(model: type[M], body: bytes) -> M:
    _refuse_nul(body)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if any(err["type"] == "json_invalid" for err in errors):
            raise MalformedJson("the body is not valid JSON") from None
        raise Unprocessable(
            "the request body is invalid", details=validation_details(errors)
        ) from None
