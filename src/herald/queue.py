"""Handing task ids to the workers' queue, after the transaction that created them committed.

A message only says "task N may be ready": losing one or sending it twice changes nothing,
because the worker's claim is conditional and the sweeper re-enqueues due tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from taskiq import AsyncBroker
from taskiq.message import TaskiqMessage

DELIVER_TASK_NAME = "herald.deliver"


class TaskQueue(Protocol):
    async def enqueue(self, task_ids: Sequence[int], correlation_id: str | None = None) -> None:
        """Send one message per id to the workers; raise on failure (the sweeper recovers)."""


class BrokerQueue:
    """Enqueues through a TaskIQ broker, one kick per id, using the broker's own formatter."""

    def __init__(self, broker: AsyncBroker) -> None:
        self.broker = broker

    async def enqueue(self, task_ids: Sequence[int], correlation_id: str | None = None) -> None:
        labels = {"correlation_id": correlation_id} if correlation_id else {}
        for task_id in task_ids:
            message = TaskiqMessage(
                task_id=self.broker.id_generator(),
                task_name=DELIVER_TASK_NAME,
                labels=labels,
                args=[task_id],
                kwargs={},
            )
            await self.broker.kick(self.broker.formatter.dumps(message))
