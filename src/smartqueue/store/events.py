"""A job's event stream (status changes and streamed chunks), and job-end notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from redis.exceptions import RedisError

from smartqueue.errors import StoreUnavailable
from smartqueue.store.codec import text
from smartqueue.store.connection import subscribed, translate_errors
from smartqueue.store.context import StoreContext

Event = tuple[str, dict[bytes, bytes]]  # event id, fields


class Events:
    """What happens to a job, as it happens."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def append_chunks(self, job_id: str, chunks: list[bytes]) -> None:
        """Append several chunks in one round trip, in order."""
        stream = self.context.keys.events(job_id)
        async with self.context.redis.pipeline(transaction=False) as pipe:
            for chunk in chunks:
                pipe.xadd(stream, {"type": "chunk", "data": chunk})
            await pipe.execute()

    @translate_errors
    async def read(
        self, job_id: str, *, after: str, block_ms: int | None, count: int = 100
    ) -> list[Event]:
        """Events of a job after stream id `after`, waiting up to `block_ms` (None: no wait)."""
        block = None if block_ms is None else min(block_ms, self.context.max_block_ms)
        stream = self.context.keys.events(job_id)
        reply = await self.context.redis.xread({stream: after}, count=count, block=block)
        if not reply:
            return []
        return [(entry_id.decode(), fields) for entry_id, fields in cast(list[Any], reply)[0][1]]

    async def done_notifications(self) -> AsyncIterator[str]:
        """Ids of jobs as they end, from every replica (pub/sub; may miss some while down)."""
        try:
            async with subscribed(self.context.redis, self.context.keys.done_channel) as pubsub:
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        yield text(message["data"]) or ""
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"job notifications lost: {error}") from error
