"""The queue at a glance: depths, jobs in flight, delayed retries, dispatch counter."""

from __future__ import annotations

from redis.exceptions import ResponseError

from smartqueue.models import PRIORITY_ORDER, Priority
from smartqueue.store import scripts
from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext
from smartqueue.store.keys import GROUP


class Overview:
    """Cluster-wide numbers, read from Redis."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def depths(self) -> dict[Priority, int]:
        """Jobs waiting for dispatch, per priority."""
        routes = self.context.routes
        call = scripts.depths(streams=self.context.keys.streams(routes), group=GROUP)
        per_stream = await self.context.scripts.run(call)
        totals = dict.fromkeys(PRIORITY_ORDER, 0)
        for index, depth in enumerate(per_stream):
            totals[PRIORITY_ORDER[index // len(routes)]] += int(depth)
        return totals

    @translate_errors
    async def in_flight(self) -> int:
        """Entries delivered to a consumer and not yet handled, across all job streams."""
        total = 0
        for stream in self.context.keys.streams(self.context.routes):
            try:
                summary = await self.context.redis.xpending(stream, GROUP)
            except ResponseError:
                continue
            total += int(summary["pending"])
        return total

    @translate_errors
    async def dispatched_total(self) -> int:
        """Entries ever delivered to consumers, across all job streams (the groups' counters)."""
        async with self.context.redis.pipeline(transaction=False) as pipe:
            for stream in self.context.keys.streams(self.context.routes):
                pipe.xinfo_groups(stream)
            replies = await pipe.execute(raise_on_error=False)
        return sum(
            int(group.get("entries-read") or 0)
            for reply in replies
            if isinstance(reply, list)
            for group in reply
        )

    @translate_errors
    async def delayed(self) -> int:
        """Jobs waiting out a retry backoff."""
        return int(await self.context.redis.zcard(self.context.keys.delayed))
