"""Status callbacks: producers hear what happened to each task (and, if they asked, what
their recipients said and did), signed, at least once, in order per task (per
recipient), never lost (docs/callbacks.md).

- `events.py`: which transition is which event (`task.delivered`, ...).
- `signing.py`: Standard Webhooks signatures and secrets.
- `endpoints.py`: where a client's events go (HERALD_CALLBACKS or PUT /api/callbacks),
  rotation, pause and resume, the endpoint audit trail; reads for the API and metrics.
- `outbox.py`: the worker side's claim and fenced record of outbox events.
- `sender.py`: the loop in each worker process that sends them.

The outbox row itself is written by a trigger on `task_events` (migration 0006), in the
statement of the transition that causes it; a recipient's, in the transaction that
stores the Telegram update (herald.updates.take).
"""
