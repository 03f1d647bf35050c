"""Everything stored under a key prefix, for tests that prove what never reaches Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from smartqueue.store.keys import Keys


async def stored_value(client: aioredis.Redis, key: bytes) -> object:
    """A key's value, read according to its type."""
    kind = await client.type(key)
    if kind == b"string":
        return await client.get(key)
    if kind == b"hash":
        return await client.hgetall(key)
    if kind == b"stream":
        return await client.xrange(key)
    if kind == b"zset":
        return await client.zrange(key, 0, -1, withscores=True)
    if kind == b"list":
        return await client.lrange(key, 0, -1)
    raise AssertionError(f"unexpected key type {kind!r} for {key!r}")


async def every_stored_byte(client: aioredis.Redis, prefix: str) -> bytes:
    """Every key, field and value of the deployment with key prefix `prefix`, concatenated."""
    dump = b""
    async for key in client.scan_iter(match=f"{Keys(prefix).tag}:*"):
        dump += key + repr(await stored_value(client, key)).encode()
    return dump
