"""Reading and parsing request bodies: a size cap, and JSON errors told apart from bad fields."""

from __future__ import annotations

from typing import TypeVar

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


def parse_json(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if any(err["type"] == "json_invalid" for err in errors):
            raise MalformedJson("the body is not valid JSON") from None
        raise Unprocessable(
            "the request body is invalid", details=validation_details(errors)
        ) from None
