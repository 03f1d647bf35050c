"""The consumer registry: heartbeats with a TTL, so dead consumers disappear by themselves."""

from __future__ import annotations

from typing import cast

from smartqueue.models import ConsumerInfo
from smartqueue.store.codec import consumer_info
from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext


class Consumers:
    """Live consumers of every replica."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def heartbeat(self, info: ConsumerInfo, *, ttl_s: float) -> None:
        """Record that a consumer is alive, and what it is doing."""
        keys = self.context.keys
        key = keys.consumer(info.id)
        fields = info.model_dump(exclude={"id"}, exclude_none=True)
        async with self.context.redis.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={name: str(value) for name, value in fields.items()})
            pipe.pexpire(key, max(1, round(ttl_s * 1000)))  # 1.5 s stays 1.5 s
            pipe.zadd(keys.consumers, {info.id: info.last_heartbeat})
            await pipe.execute()

    @translate_errors
    async def others_live(self, *, prefix: str, now: float, ttl_s: float) -> bool:
        """Whether a consumer whose id does not start with `prefix` (another replica's) sent a
        heartbeat within `ttl_s`."""
        ids = await self.context.redis.zrangebyscore(self.context.keys.consumers, now - ttl_s,
                                                     "+inf")  # fmt: skip
        return any(not member.decode().startswith(prefix) for member in cast(list[bytes], ids))

    @translate_errors
    async def forget(self, consumer_id: str) -> None:
        """Remove a consumer that stopped cleanly."""
        await self.context.redis.delete(self.context.keys.consumer(consumer_id))
        await self.context.redis.zrem(self.context.keys.consumers, consumer_id)

    @translate_errors
    async def count_live(self, *, now: float, ttl_s: float) -> int:
        """How many consumers sent a heartbeat within `ttl_s` (a read: nothing is forgotten)."""
        return int(
            await self.context.redis.zcount(self.context.keys.consumers, now - ttl_s, "+inf")
        )

    @translate_errors
    async def live(self, *, now: float, ttl_s: float) -> list[ConsumerInfo]:
        """Consumers that sent a heartbeat within `ttl_s`; older ones are forgotten."""
        redis, keys = self.context.redis, self.context.keys
        await redis.zremrangebyscore(keys.consumers, "-inf", now - ttl_s)
        ids = [
            member.decode()
            for member in cast(list[bytes], await redis.zrange(keys.consumers, 0, -1))
        ]
        async with redis.pipeline(transaction=False) as pipe:
            for consumer_id in ids:
                pipe.hgetall(keys.consumer(consumer_id))
            described = await pipe.execute()
        return [consumer_info(cid, raw) for cid, raw in zip(ids, described, strict=True) if raw]
