"""Every Redis key Herald uses, named here and nowhere else.

All of them start with `HERALD_QUEUE_NAME`, so deployments and test runs sharing one Redis
stay apart, and `all_keys_pattern(queue)` matches all the keys of one of them.

    {queue}                  list: the queue messages (`herald.queue`); pushed by the
                             gateway and the worker's hints, popped by `herald.broker`
    {queue}:workers:{owner}  a worker process's heartbeat, JSON, expiring (`herald.fleet`);
                             read by `herald status` and `herald dev`
    {queue}:rl:bot           the bot-wide rate-limit cell (GCRA, `delivery/ratelimit.py`)
    {queue}:rl:chat:{chat}   a chat's cell
    {queue}:rl:group:{chat}  a group's or channel's cell
    {queue}:quota:{client}   a producer's intake quota (GCRA, `api/protection.py`)

Nothing in Redis needs to outlive a restart: PostgreSQL holds the tasks, and the sweeper
refills the list.
"""

from __future__ import annotations


def queue_key(queue_name: str) -> str:
    """The list the gateway and the worker push queue messages to and the broker pops."""
    return queue_name


def queue_client_name(queue_name: str) -> str:
    """The connection name of the broker's clients (CLIENT LIST shows who waits on what)."""
    return f"herald-queue:{queue_name}"


def worker_key(queue_name: str, owner: str) -> str:
    return f"{queue_name}:workers:{owner}"


def workers_pattern(queue_name: str) -> str:
    """A SCAN pattern for the heartbeats of every worker process."""
    return f"{queue_name}:workers:*"


def rate_limit_key(queue_name: str, scope: str, chat_id: str | None = None) -> str:
    """A rate-limit cell: `scope` is "bot", or "chat" or "group" with the chat's id."""
    if chat_id is None:
        return f"{queue_name}:rl:{scope}"
    return f"{queue_name}:rl:{scope}:{chat_id}"


def quota_key(queue_name: str, client: str) -> str:
    return f"{queue_name}:quota:{client}"


def all_keys_pattern(queue_name: str) -> str:
    """A SCAN pattern for every key above (tests and benchmarks clean up with it)."""
    return f"{queue_name}*"
