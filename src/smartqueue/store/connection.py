"""The Redis client, and turning its failures into StoreUnavailable (503 + Retry-After)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from smartqueue.config import Settings
from smartqueue.errors import StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")


def new_client(settings: Settings) -> aioredis.Redis:
    """A client on `settings.redis_url` that fails fast (no retries) when Redis is down.

    Its pool holds up to `redis_max_connections`; past that a call waits for a free connection
    (up to the Redis timeout) instead of failing, so a burst of submissions queues briefly.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def translate_errors(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Turn Redis connection trouble into StoreUnavailable (503 + Retry-After)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            result = await method(*args, **kwargs)
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"the job store (Redis) is unavailable: {error}") from error
        raise_lost_cancel()
        return result

    return wrapper


def raise_lost_cancel() -> None:
    """Deliver a cancel that redis-py swallowed.

    redis-py writes through `asyncio.wait_for`, which on Python 3.11 returns the result instead
    of raising when the task is cancelled just as the write completes; the task would run on
    (a claim keeper renewing forever, a deadline that never fires).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
