"""No secret header reaches Redis; a Redis outage is a quick 503, never a 500 or a hang."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from smartqueue.config import FleetConfig
from tests.api.conftest import CHAT, SettingsFactory
from tests.support.app_client import app_client
from tests.support.redis_dump import every_stored_byte
from tests.support.redis_server import RedisServer

CANARY = "canary-secret-7f3a9c"


async def test_secret_headers_never_reach_redis(
    client: httpx.AsyncClient, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    secrets = {
        "Authorization": f"Bearer {CANARY}-auth",
        "Cookie": f"session={CANARY}-cookie",
        "Proxy-Authorization": f"Basic {CANARY}-proxy",
        "X-Api-Key": f"{CANARY}-apikey",
    }
    headers = {"Content-Type": "application/json", "X-Request-Id": "req-1", **secrets}
    job = (await client.post("/enqueue", content=json.dumps(CHAT), headers=headers)).json()
    await client.get(f"/status/{job['job_id']}")

    stored = await every_stored_byte(redis_client, key_prefix)

    assert b"req-1" in stored  # allow-listed headers are kept...
    assert CANARY.encode() not in stored  # ...secret ones never are


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server this test may kill."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_redis_down_enqueue_is_503_within_a_second_and_health_is_503(
    own_redis: RedisServer, make_settings: SettingsFactory, local_fleet: FleetConfig
) -> None:
    async with app_client(make_settings(redis_url=own_redis.url), local_fleet) as http:
        assert (await http.get("/health")).status_code == 200
        own_redis.kill()

        started = time.monotonic()
        refused = await http.post("/enqueue", json=CHAT)
        elapsed_s = time.monotonic() - started
        health = await http.get("/health")
        live = await http.get("/livez")

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "store_unavailable"
    assert int(refused.headers["Retry-After"]) >= 1
    assert elapsed_s < 1.0
    assert health.status_code == 503
    assert live.status_code == 200


async def test_service_starts_while_redis_is_down_and_reports_unready(
    make_settings: SettingsFactory, local_fleet: FleetConfig
) -> None:
    async with app_client(make_settings(redis_url="redis://127.0.0.1:1/0"), local_fleet) as http:
        health = await http.get("/health")
        status = await http.get("/status")

    assert health.status_code == 503
    assert status.status_code == 503
