"""The task functions and the start-up and shutdown hooks taskiq's CLI finds.

A worker process's resources (`herald.worker.runtime`) are opened from the broker's own
settings at start-up and kept in the broker's `TaskiqState`.
"""

from __future__ import annotations

from taskiq import TaskiqEvents, TaskiqState

from herald.queue import DELIVER_TASK_NAME
from herald.worker.runtime import WorkerRuntime
from workers.broker import broker


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def _startup(state: TaskiqState) -> None:
    state.runtime = await WorkerRuntime.start(broker.settings)


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def _shutdown(state: TaskiqState) -> None:
    runtime: WorkerRuntime | None = state.pop("runtime", None)
    if runtime is not None:
        await runtime.close()


@broker.task(task_name=DELIVER_TASK_NAME)
async def deliver(task_id: int) -> None:
    """Claim, send and record the best due task (`task_id` is a hint); a no-op if none is due."""
    # `broker.state` is the state the hooks get: read here, it costs nothing per message,
    # where a `TaskiqDepends` parameter would add a resolution step (docs/delivery.md).
    try:
        runtime: WorkerRuntime = broker.state.runtime
    except AttributeError:
        raise RuntimeError("the worker's resources are not started") from None
    await runtime.deliver(task_id)
