"""The Redis client (one Redis, Sentinel or Cluster), and its failures as StoreUnavailable."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as aioredis
from pydantic import SecretStr
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from smartqueue.config import Settings
from smartqueue.errors import StoreUnavailable
from smartqueue.redis_url import RedisMode, RedisTarget

log = logging.getLogger(__name__)

RECONNECT_TRIES = 3
RECONNECT_BASE_S = 0.05
RECONNECT_CAP_S = 0.5
HEALTH_CHECK_S = 5  # a connection idle this long is PINGed before use

P = ParamSpec("P")
T = TypeVar("T")


Client = aioredis.Redis | RedisCluster
"""A client on one Redis (plain or through Sentinel) or on a Redis Cluster."""


def new_client(settings: Settings) -> Client:
    """A client for the deployment `settings.redis_url` names, failing fast.

    On a single Redis, a command whose connection dropped (a restart) is retried a few times
    with backoff (`reconnecting`); otherwise a failed call raises at once (the engine waits and
    tries again; the API answers 503), so a Sentinel or Cluster failover costs each caller one
    error, then the client follows the new
    primary: Sentinel connections ask the sentinels for the primary when they (re)connect and
    drop a primary that was demoted (READONLY); the cluster client re-reads the slot map after a
    connection error or MOVED.
    """
    target = settings.redis_target
    if target.mode is RedisMode.SENTINEL:
        return _sentinel_client(settings, target)
    if target.mode is RedisMode.CLUSTER:
        return _cluster_client(settings, target)
    return _single_client(settings)


def _timeouts(settings: Settings) -> dict[str, Any]:
    return {"socket_timeout": settings.redis_timeout_s,
            "socket_connect_timeout": settings.redis_timeout_s}  # fmt: skip


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _single_client(settings: Settings) -> aioredis.Redis:
    """Its pool holds up to `redis_max_connections`; past that a call waits for a free connection
    (up to the Redis timeout) instead of failing, so a burst of submissions queues briefly."""
    password = {"password": _secret(settings.redis_password)} if settings.redis_password else {}
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s, retry=reconnecting(),
        health_check_interval=HEALTH_CHECK_S, **_timeouts(settings), **password,
    )  # fmt: skip
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def reconnecting() -> Retry:
    """Retry a command whose connection dropped (a Redis restart), with jittered backoff.

    Only connection errors are retried, not timeouts: a frozen Redis answers 503 within the
    socket timeout. Every script is safe to run twice (enqueue finds its own record, commits
    find their own mark), so a retry after a lost reply changes nothing.
    """
    backoff = EqualJitterBackoff(cap=RECONNECT_CAP_S, base=RECONNECT_BASE_S)
    return Retry(backoff, RECONNECT_TRIES, supported_errors=(RedisConnectionError,))


def _sentinel_client(settings: Settings, target: RedisTarget) -> aioredis.Redis:
    sentinel_kwargs = {**_timeouts(settings), "password": _secret(settings.sentinel_password)}
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    client: aioredis.Redis = sentinel.master_for(
        target.service, redis_class=aioredis.Redis, db=target.db,
        password=_secret(settings.redis_password), max_connections=settings.redis_max_connections,
        retry=Retry(NoBackoff(), 0), **_timeouts(settings),
    )  # fmt: skip
    return client


def _cluster_client(settings: Settings, target: RedisTarget) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        password=_secret(settings.redis_password), max_connections=settings.redis_max_connections,
        retry=Retry(NoBackoff(), 0), **_timeouts(settings),
    )  # fmt: skip


async def close_client(client: Client) -> None:
    """Close the client's connections, and those to the sentinels it asked."""
    await client.aclose()
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        await pool.sentinel_manager.aclose()


@asynccontextmanager
async def subscribed(client: Client, channel: str) -> AsyncIterator[PubSub]:
    """A pub/sub subscribed to `channel`; on a cluster, over a plain connection to one node.

    A cluster delivers a classic PUBLISH on every node, so one node will do: the one serving the
    channel's slot once the slot map is read (the cluster client's own pub/sub needs that map
    and fails with a KeyError before it).
    """
    plain = await _node_client(client, channel) if isinstance(client, RedisCluster) else None
    source = plain if plain is not None else cast(aioredis.Redis, client)
    pubsub = source.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(channel)
        yield pubsub
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        if plain is not None:
            await plain.aclose()


async def _node_client(cluster: RedisCluster, key: str) -> aioredis.Redis:
    await cluster.initialize()
    node = cluster.get_node_from_key(key)
    if node is None:
        raise RedisConnectionError(f"no cluster node serves {key}")
    pool = aioredis.ConnectionPool(connection_class=node.connection_class, max_connections=2,
                                   **node.connection_kwargs)  # fmt: skip
    return aioredis.Redis.from_pool(pool)


def translate_errors(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Turn Redis connection trouble into StoreUnavailable (503 + Retry-After)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            result = await method(*args, **kwargs)
        except (RedisError, OSError) as error:
            # Redis's error text names internal hosts: it goes to the log, never to a client.
            log.warning("store unavailable", extra={"error": f"{type(error).__name__}: {error}"})
            raise StoreUnavailable() from error
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
