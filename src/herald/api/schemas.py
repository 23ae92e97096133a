"""Request and response bodies, with Telegram's limits checked at intake.

A task is refused with 422 here, before anything is stored, when Telegram would refuse
it anyway: markup Telegram cannot parse (herald.markup, the parser the emulator uses
too), a text of 1 to 4096 characters and a caption of up to 1024 as Telegram counts them
after parsing, parse_mode HTML or MarkdownV2, a photo or document that is an http(s)
URL or a file_id, inline URL buttons that Telegram accepts, times that exist in UTC,
`send_at` before `expires_at` and `expires_at` in the future.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from herald.chat_id import ChatId
from herald.markup import text_length
from herald.states import OPERATOR_TARGETS, DeliveryMode, TaskStatus

MAX_TEXT = 4096
MAX_CAPTION = 1024
# Markup may make the raw text longer than what Telegram counts; past this it cannot fit.
# It also bounds what one text costs to parse (linear in its length).
MAX_RAW_TEXT = 4 * MAX_TEXT
MAX_BUTTONS = 100
MAX_BUTTONS_PER_ROW = 8
MAX_METADATA_BYTES = 16_384
MAX_IDEMPOTENCY_KEY = 255
# A producer's name for a person (POST /api/recipients/{external_id}/link): it goes in
# URLs, so a safe alphabet.
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"

_BUTTON_URL = re.compile(r"(https?|tg)://[^\s]{1,2040}")
_CALLBACK_URL = re.compile(r"https?://[^/\s]+(/\S*)?")
# What Telegram may fetch or look up: an http(s) URL (something after the //) or a file_id
# (URL-safe base64, never short). Not a path, file://, attach:// (a part of this same
# request) or any other scheme: a local Bot API server reads file:// paths from its disk.
_FILE_URL = re.compile(r"(?i:https?)://[^\s\x00-\x1f\x7f/?#][^\s\x00-\x1f\x7f]*")
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{20,}")


def _no_nul(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000; refuse it here rather than fail in SQL
    # (found by schemathesis as a 500). Per field, so a batch refuses only the bad item.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _file_ref(value: str) -> str:
    if not (_FILE_URL.fullmatch(value) or _FILE_ID.fullmatch(value)):
        raise ValueError("must be an http or https URL, or a Telegram file_id")
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-12:00 is in year 10000 in UTC
        raise ValueError("out of range: in UTC it must fall in the years 1 to 9999") from None


SafeStr = Annotated[str, AfterValidator(_no_nul)]
Text = Annotated[SafeStr, Field(max_length=MAX_RAW_TEXT)]
FileRef = Annotated[SafeStr, Field(min_length=1, max_length=2048), AfterValidator(_file_ref)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
ExternalId = Annotated[str, Field(pattern=EXTERNAL_ID_PATTERN)]


def visible_length(text: str, parse_mode: str | None) -> int:
    """Characters Telegram counts in `text` once parsed.

    Markup Telegram refuses raises ParseEntitiesError, a ValueError that pydantic keeps
    whole, so the error details can give its reason and offset (api.errors). Not a
    PydanticCustomError: its message template would expand `{...}` found in the text.
    """
    return text_length(text, parse_mode)


class Button(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[SafeStr, Field(min_length=1, max_length=64)]
    url: Annotated[SafeStr, Field(max_length=2048)]

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _BUTTON_URL.fullmatch(value):
            raise ValueError("must be an http, https or tg URL")
        return value


class TaskIn(BaseModel):
    """One notification: a text message, or a photo or document with an optional caption."""

    model_config = ConfigDict(extra="forbid")

    chat_id: ChatId | None = Field(None, description="a chat id, or @channelusername")
    recipient: ExternalId | None = Field(
        None, description="instead of chat_id: a recipient bound by a deep link"
    )
    # Before text and caption: their validators parse them in this mode.
    parse_mode: Literal["HTML", "MarkdownV2"] | None = None
    text: Text | None = None
    photo: FileRef | None = Field(None, description="http(s) URL or file_id")
    document: FileRef | None = Field(None, description="http(s) URL or file_id")
    caption: Text | None = None
    disable_notification: StrictBool = False
    protect_content: StrictBool = False
    link_preview: StrictBool = Field(False, description="show a link preview (off by default)")
    buttons: list[list[Button]] | None = Field(None, description="inline URL buttons, in rows")
    message_thread_id: StrictInt | None = Field(None, ge=1, le=2**31 - 1)
    send_at: UtcDatetime | None = None
    expires_at: UtcDatetime | None = None
    priority: StrictInt = Field(0, ge=-100, le=100, description="higher first in a backlog")
    max_attempts: StrictInt | None = Field(None, ge=1, le=100)
    delivery: DeliveryMode = DeliveryMode.EXACTLY_ONCE
    metadata: dict[str, Any] | None = Field(None, description="free JSON kept for the producer")
    callback_url: Annotated[SafeStr, Field(max_length=2048)] | None = Field(
        None,
        description="where this task's status callbacks go instead of the client's endpoint:"
        " an http(s) URL on a host that endpoint allows (docs/callbacks.md)",
    )

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        if value is not None and not _CALLBACK_URL.fullmatch(value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            length = visible_length(value, info.data.get("parse_mode"))
            if not 1 <= length <= MAX_TEXT:
                raise PydanticCustomError(
                    "text_length",
                    "text must be 1 to {limit} characters as Telegram counts them after "
                    "parsing; it has {length}",
                    {"limit": MAX_TEXT, "length": length},
                )
        return value

    @field_validator("caption")
    @classmethod
    def _caption(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value:
            length = visible_length(value, info.data.get("parse_mode"))
            if length > MAX_CAPTION:
                raise PydanticCustomError(
                    "caption_length",
                    "caption must be at most {limit} characters as Telegram counts them "
                    "after parsing; it has {length}",
                    {"limit": MAX_CAPTION, "length": length},
                )
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            canonical = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError as exc:
            # JSON allows any integer; orjson (and so what we store) only 64-bit ones.
            # Found by schemathesis: without this check such metadata ended in a 500.
            raise ValueError(f"cannot be stored as JSON: {exc}") from None
        if _has_nul(value):
            raise ValueError("must not contain the NUL character")
        if len(canonical) > MAX_METADATA_BYTES:
            raise ValueError(f"larger than {MAX_METADATA_BYTES} bytes as JSON")
        # Sorted keys: the request hash must not depend on the order the producer used.
        sorted_value: dict[str, Any] = orjson.loads(canonical)
        return sorted_value

    @field_validator("buttons")
    @classmethod
    def _buttons(cls, rows: list[list[Button]] | None) -> list[list[Button]] | None:
        if rows is None:
            return None
        if any(not row or len(row) > MAX_BUTTONS_PER_ROW for row in rows):
            raise ValueError(f"each row needs 1 to {MAX_BUTTONS_PER_ROW} buttons")
        if sum(len(row) for row in rows) > MAX_BUTTONS:
            raise ValueError(f"at most {MAX_BUTTONS} buttons")
        return rows

    @model_validator(mode="after")
    def _message(self) -> TaskIn:
        # Plain attribute tests: this runs for every task, 500 times per batch request.
        text = self.text
        if (self.chat_id is None) == (self.recipient is None):
            raise ValueError("give exactly one of chat_id, recipient")
        if (text is None) + (self.photo is None) + (self.document is None) != 2:
            raise ValueError("give exactly one of text, photo, document")
        if text is not None and self.caption is not None:
            raise ValueError("caption goes with photo or document, not text")
        if self.expires_at is not None:
            if self.expires_at <= datetime.now(UTC):
                raise ValueError("expires_at is in the past")
            if self.send_at is not None and self.send_at >= self.expires_at:
                raise ValueError("send_at must be before expires_at")
        return self

    def content(self) -> dict[str, Any]:
        """The message as stored in `tasks.content`: what the sender needs besides chat_id.

        Built by hand: this runs per task on the hot path, and is several times faster
        than a `model_dump`.
        """
        content: dict[str, Any] = {}
        for name in _CONTENT_FIELDS:
            value = getattr(self, name)
            if value is not None and value is not False:
                content[name] = value
        if self.buttons is not None:
            content["buttons"] = [[b.model_dump() for b in row] for row in self.buttons]
        return content

    def request_hash(self, content: dict[str, Any] | None = None) -> bytes:
        """sha256 of the normalized request: requests that mean the same task hash the same.

        Over the content (keys sorted), chat id and delivery fields, with metadata keys
        sorted at validation. An idempotency key is not part of it: the same task alone or
        in a batch is the same request. Pass `content` when it was built already.
        """
        fields = [
            self.content() if content is None else content,
            self.chat_id.ref if self.chat_id is not None else {"recipient": self.recipient},
            self.send_at,
            self.expires_at,
            self.priority,
            self.max_attempts,
            self.delivery.value,
            self.metadata,
        ]
        if self.callback_url is not None:
            # Only when given: the hashes stored before the field existed still match.
            fields.append(self.callback_url)
        canonical = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).digest()


_CONTENT_FIELDS = (
    "text",
    "photo",
    "document",
    "caption",
    "parse_mode",
    "disable_notification",
    "protect_content",
    "link_preview",
    "message_thread_id",
)  # and "buttons", dumped apart

IdempotencyKey = Annotated[SafeStr, Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY)]


class BatchItem(TaskIn):
    idempotency_key: IdempotencyKey


class BatchIn(BaseModel):
    """Items are validated one by one, so one bad item does not refuse the others."""

    model_config = ConfigDict(extra="forbid")
    items: list[Any] = Field(min_length=1)


class BatchRequest(BaseModel):
    """The batch body as documented (parsed as `BatchIn`, then item by item)."""

    model_config = ConfigDict(extra="forbid")
    items: list[BatchItem] = Field(min_length=1)


class BatchItemResult(BaseModel):
    index: int
    idempotency_key: str | None
    result: Literal["created", "replayed", "error"]
    id: int | None = None
    error: dict[str, Any] | None = None


class BatchOut(BaseModel):
    created: int
    replayed: int
    refused: int
    results: list[BatchItemResult]


class TaskOut(BaseModel):
    """A task as the API shows it: the request's fields plus the delivery state."""

    id: int
    idempotency_key: str
    status: TaskStatus
    chat_id: int | str
    recipient: str | None = None
    text: str | None = None
    photo: str | None = None
    document: str | None = None
    caption: str | None = None
    parse_mode: str | None = None
    disable_notification: bool = False
    protect_content: bool = False
    link_preview: bool = False
    buttons: list[list[Button]] | None = None
    message_thread_id: int | None = None
    send_at: datetime | None
    expires_at: datetime | None
    priority: int
    delivery: DeliveryMode
    max_attempts: int
    attempt: int = Field(description="claims so far, each one attempt (429s included)")
    failures: int = Field(description="failed attempts, bounded by max_attempts (never a 429)")
    next_attempt_at: datetime
    metadata: dict[str, Any] | None
    callback_url: str | None = None
    telegram_message_id: int | None
    last_error_code: int | None
    last_error: str | None
    correlation_id: str | None
    created_at: datetime
    updated_at: datetime


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class EventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    from_status: TaskStatus | None
    to_status: TaskStatus
    attempt: int | None
    reason: str | None
    error_code: int | None
    details: dict[str, Any] | None


class EventList(BaseModel):
    items: list[EventOut]


# The statuses an operator may ask for, from the transition table (herald.states): a new
# operator transition is then a 409 or a 200 by the table, never a 422 by the schema.
if TYPE_CHECKING:
    OperatorTarget = str
else:
    OperatorTarget = Literal[tuple(s.value for s in OPERATOR_TARGETS)]


class TaskPatch(BaseModel):
    """An operator transition: resend (to pending), cancel, or resolve an uncertain task."""

    model_config = ConfigDict(extra="forbid")

    status: OperatorTarget
    reason: Annotated[SafeStr, Field(max_length=1000)] | None = None
    telegram_message_id: StrictInt | None = Field(
        None, ge=1, description="resolving as delivered: the message Telegram reported"
    )


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class CallbackEndpointIn(BaseModel):
    """PUT /api/callbacks: a client's endpoint for status callbacks (docs/callbacks.md)."""

    model_config = ConfigDict(extra="forbid")

    client: Annotated[SafeStr, Field(min_length=1, max_length=200)]
    url: Annotated[SafeStr, Field(max_length=2048)]
    hosts: list[Annotated[SafeStr, Field(min_length=1, max_length=253)]] | None = Field(
        None,
        max_length=50,
        description="hosts a task's callback_url may name; the URL's host by default",
    )
    rotate: StrictBool = Field(
        False, description="make a new secret; the old one still signs during the grace period"
    )
    updates: StrictBool = Field(
        False,
        description="also send the client's recipients' events: message.received and"
        " recipient.linked, .subscribed, .unsubscribed, .blocked, .unblocked",
    )
    grace_seconds: float | None = Field(
        None, ge=0, le=30 * 86400, description="the grace period of a rotation"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _CALLBACK_URL.fullmatch(value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class CallbackEndpointOut(BaseModel):
    client: str
    url: str
    hosts: list[str]
    source: str = Field(description="env (HERALD_CALLBACKS) or api (PUT /api/callbacks)")
    updates: bool = Field(description="its recipients' events go there too")
    previous_secret_until: datetime | None = Field(
        description="during a rotation: the old secret signs too until then"
    )
    paused_at: datetime | None
    failing_since: datetime | None
    updated_at: datetime
    secret: str | None = Field(
        None, description="only in the answer that made it (a new endpoint, a rotation)"
    )


class CallbackAttemptOut(BaseModel):
    at: datetime
    attempt: int
    status_code: int | None
    latency_ms: float
    error: str | None


class CallbackEventOut(BaseModel):
    id: str = Field(description="the webhook-id header, the same on every attempt")
    seq: int
    type: str
    status: Literal["pending", "sending", "delivered", "failed"]
    attempts: list[CallbackAttemptOut]
    created_at: datetime
    finished_at: datetime | None
    next_attempt_at: datetime | None
    payload: dict[str, Any] = Field(description="the body sent")


class CallbackEventList(BaseModel):
    items: list[CallbackEventOut]
