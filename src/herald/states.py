"""Task states and the transitions between them.

```
  create -> pending --claim--> sending --> delivered | pending (retry) | failed | uncertain
            pending --cancel--> cancelled
  operator: failed | uncertain --resend--> pending;  uncertain --resolve--> delivered | failed
```
Workers move tasks along the delivery path; operators may only take the transitions in
`OPERATOR_TRANSITIONS`. Anything else is refused with 409.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNCERTAIN = "uncertain"


class DeliveryMode(StrEnum):
    EXACTLY_ONCE = "exactly_once"
    # An ambiguous outcome is retried: the recipient may get the message twice.
    AT_LEAST_ONCE = "at_least_once"


FINAL_STATUSES = frozenset({TaskStatus.DELIVERED, TaskStatus.FAILED, TaskStatus.CANCELLED})

# (from, to) -> the operator action it stands for.
OPERATOR_TRANSITIONS: dict[tuple[TaskStatus, TaskStatus], str] = {
    (TaskStatus.PENDING, TaskStatus.CANCELLED): "cancel",
    (TaskStatus.FAILED, TaskStatus.PENDING): "resend",
    (TaskStatus.UNCERTAIN, TaskStatus.PENDING): "resend",
    (TaskStatus.UNCERTAIN, TaskStatus.DELIVERED): "resolve",
    (TaskStatus.UNCERTAIN, TaskStatus.FAILED): "resolve",
}
