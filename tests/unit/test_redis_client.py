"""new_client: one client class per deployment form, passwords where each side needs them."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from smartqueue.config import Settings
from smartqueue.store.connection import new_client

SENTINEL_URL = "redis+sentinel://s1:26379,s2:26380/mymaster/2"


def _kwargs(client: Redis) -> dict[str, Any]:
    kwargs: dict[str, Any] = client.connection_pool.connection_kwargs
    return kwargs


async def test_client_for_sentinel_url_asks_the_sentinels_with_their_own_password() -> None:
    settings = Settings(redis_url=SENTINEL_URL, redis_password="redis-pw",
                        sentinel_password="sentinel-pw")  # fmt: skip
    client = new_client(settings)
    try:
        assert isinstance(client, Redis)
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        manager: Sentinel = pool.sentinel_manager
        sentinels = [_kwargs(sentinel) for sentinel in manager.sentinels]
        assert [(s["host"], s["port"], s["password"]) for s in sentinels] == [
            ("s1", 26379, "sentinel-pw"), ("s2", 26380, "sentinel-pw")
        ]  # fmt: skip
        assert pool.service_name == "mymaster"
        assert (_kwargs(client)["password"], _kwargs(client)["db"]) == ("redis-pw", 2)
        assert "redis-pw" not in repr(settings)
    finally:
        await client.aclose()


async def test_client_for_cluster_url_is_a_cluster_client_seeded_with_every_node() -> None:
    client = new_client(Settings(redis_url="redis+cluster://h1:7000,h2:7001/",
                                 redis_password="pw"))  # fmt: skip
    try:
        assert isinstance(client, RedisCluster)
        seeds = client.nodes_manager.startup_nodes
        assert sorted(seeds) == ["h1:7000", "h2:7001"]
        assert client.nodes_manager.connection_kwargs["password"] == "pw"
    finally:
        await client.aclose()


async def test_client_for_plain_url_takes_the_password_setting() -> None:
    client = new_client(Settings(redis_url="redis://cache:6380/1", redis_password="pw"))
    try:
        assert isinstance(client, Redis)
        assert (_kwargs(client)["host"], _kwargs(client)["port"]) == ("cache", 6380)
        assert (_kwargs(client)["db"], _kwargs(client)["password"]) == (1, "pw")
    finally:
        await client.aclose()
