"""Telegram's answer shapes, as bytes ready to write.

`{"ok": true, "result": ...}` on success; `{"ok": false, "error_code", "description"}` with
`parameters.retry_after` or `parameters.migrate_to_chat_id` on errors, the HTTP status equal
to `error_code`. The fixed answers are encoded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    outcome: str  # "ok", "error", "rate_limited" or a fault's name, for the request log
    content_type: bytes = b"application/json"


class BotApiError(Exception):
    """A Bot API error answer; raised inside a method, turned into a Reply by the dispatcher."""

    def __init__(
        self, status: int, description: str, outcome: str = "error", **parameters: int
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.outcome = outcome
        self.parameters = parameters

    def reply(self) -> Reply:
        return error(self.status, self.description, self.outcome, **self.parameters)


def ok(result: Any) -> Reply:
    return Reply(200, orjson.dumps({"ok": True, "result": result}), "ok")


def error(status: int, description: str, outcome: str = "error", **parameters: int) -> Reply:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Reply(status, orjson.dumps(body), outcome)


def too_many_requests(retry_after: int, outcome: str = "rate_limited") -> Reply:
    return error(
        429, f"Too Many Requests: retry after {retry_after}", outcome, retry_after=retry_after
    )


UNAUTHORIZED = error(401, "Unauthorized")
NOT_FOUND = error(404, "Not Found")
INTERNAL_ERROR = error(500, "Internal Server Error", "fault_500")
BAD_GATEWAY = error(502, "Bad Gateway", "fault_502")
# What nginx in front of the Bot API answers when the backend fails: not JSON at all.
PROXY_BAD_GATEWAY = Reply(
    502,
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n",
    "fault_proxy_502",
    b"text/html",
)
