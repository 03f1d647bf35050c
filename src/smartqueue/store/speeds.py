"""Learned GPU speeds: each GPU's decayed statistics of its completed jobs, one hash per GPU,
shared by every replica."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    async def update(self, gpu: str, change: Callable[[Fields], Fields]) -> Fields:
        """Apply `change` to a GPU's statistics and store the result (read, then write).

        Two replicas updating one GPU at the same instant may lose one sample: a statistic
        over hundreds of jobs does not need a lock.
        """
        key = self.context.keys.speed(gpu)
        (raw,) = await self.context.hashes([key])
        changed = change(_text(raw))
        mapping: dict[Any, Any] = dict(changed)
        await self.context.redis.hset(key, mapping=mapping)
        return changed


def _text(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in raw.items()}
