"""Learned GPU speeds: each GPU's decayed statistics of its completed jobs, one hash per GPU,
shared by every replica."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext

Fields = Mapping[str, str]


class Speeds:
    """Read and update the speed statistics (their meaning is smartqueue.planner's)."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def read(self, gpus: list[str]) -> dict[str, dict[str, str]]:
        """Every GPU's statistics as stored ({} for a GPU with none yet)."""
        async with self.context.redis.pipeline(transaction=False) as pipe:
            for gpu in gpus:
                pipe.hgetall(self.context.keys.speed(gpu))
            replies = await pipe.execute()
        return {
            gpu: {
                key.decode(): value.decode() for key, value in cast(dict[bytes, bytes], raw).items()
            }
            for gpu, raw in zip(gpus, replies, strict=True)
        }

    @translate_errors
    async def write(self, changed: Mapping[str, Fields]) -> None:
        """Store the statistics of the GPUs in `changed` (one round trip; none when empty)."""
        if not changed:
            return
        async with self.context.redis.pipeline(transaction=False) as pipe:
            for gpu, fields in changed.items():
                mapping: dict[Any, Any] = dict(fields)
                pipe.hset(self.context.keys.speed(gpu), mapping=mapping)
            await pipe.execute()
