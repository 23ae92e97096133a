"""The TaskIQ broker: a Redis list (LPUSH/BRPOP), `taskiq worker workers.broker:broker`.

Why a list and not a stream: a queue message only says "task N may be ready"; PostgreSQL
holds the truth and the sweeper re-enqueues every due task that no worker picked up. So
the queue may lose or repeat messages without harm, and the simplest broker wins. The
stream broker's acknowledgements would buy nothing the sweeper does not already give,
and bring its traps (a group created after the first kick, an unbounded stream,
redelivery of a running task after `idle_timeout`, a consumer that ignores SIGTERM,
NOGROUP after a Redis flush). See docs/architecture.md.
"""

from __future__ import annotations

from taskiq import AsyncBroker
from taskiq_redis import ListQueueBroker

from herald.config import Settings, get_settings


def make_broker(settings: Settings) -> AsyncBroker:
    return ListQueueBroker(
        url=settings.redis_url,
        queue_name=settings.queue_name,
        max_connection_pool_size=64,
    )


broker = make_broker(get_settings())
