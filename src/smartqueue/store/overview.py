"""The queue at a glance: depths, jobs in flight, slots held, delayed retries, dispatch counter."""

from __future__ import annotations

from typing import cast

from redis.exceptions import ResponseError

from smartqueue.models import DISPATCH_ORDER, PRIORITY_ORDER, Priority
from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext
from smartqueue.store.keys import GROUP, Counter


class Overview:
    """Cluster-wide numbers, read from Redis."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def depths_by_route(self) -> dict[str, dict[Priority, int]]:
        """Jobs waiting for dispatch per route and priority, batch included (one read)."""
        pairs = [(route, priority) for route in self.context.routes for priority in DISPATCH_ORDER]
        counters = [Counter.of(priority, route) for route, priority in pairs]
        fields = [name for counter in counters for name in (counter.entered, counter.left)]
        raw = cast(list[bytes | None], await self.context.redis.hmget(self.context.keys.counts,
                                                                      fields))  # fmt: skip
        values = [int(value or 0) for value in raw]
        depths: dict[str, dict[Priority, int]] = {route: {} for route in self.context.routes}
        for index, (route, priority) in enumerate(pairs):
            depths[route][priority] = max(0, values[2 * index] - values[2 * index + 1])
        return depths

    async def depths(self) -> dict[Priority, int]:
        """Jobs waiting for dispatch, per priority (all routes)."""
        by_route = await self.depths_by_route()
        return {p: sum(route[p] for route in by_route.values()) for p in PRIORITY_ORDER}

    @translate_errors
    async def in_flight(self) -> int:
        """Jobs taken by a consumer and not yet handled (the running stream's pending entries)."""
        try:
            summary = await self.context.redis.xpending(self.context.keys.running, GROUP)
        except ResponseError:  # no group yet: nothing was ever taken
            return 0
        return int(summary["pending"])

    @translate_errors
    async def dispatched_total(self) -> int:
        """Jobs ever taken by consumers (the running stream's group counter)."""
        try:
            groups = await self.context.redis.xinfo_groups(self.context.keys.running)
        except ResponseError:
            return 0
        return sum(int(group.get("entries-read") or 0) for group in groups)

    @translate_errors
    async def delayed(self) -> int:
        """Jobs waiting out a retry backoff."""
        return int(await self.context.redis.zcard(self.context.keys.delayed))

    @translate_errors
    async def slots_held(self, gpus: list[str]) -> dict[str, int]:
        """Slot reservations per GPU whether or not their lease is still live (jobs in flight)."""
        async with self.context.redis.pipeline(transaction=False) as pipe:
            for gpu in gpus:
                pipe.zcard(self.context.keys.slots(gpu))
            counts = await pipe.execute()
        return {gpu: int(count) for gpu, count in zip(gpus, counts, strict=True)}
