"""Task definitions. The delivery task takes a task id and reloads the rest from PostgreSQL."""

from __future__ import annotations

from herald.queue import DELIVER_TASK_NAME
from workers.broker import broker


@broker.task(task_name=DELIVER_TASK_NAME)
async def deliver(task_id: int) -> None:
    """Claim, send and record task `task_id`; a no-op when it is not pending and due."""
    raise NotImplementedError("delivery is built in issue 4")
