"""Fixtures shared by every test: a real redis-server and a fresh key prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from smartqueue.config import FleetConfig, load_fleet
from tests.support.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent

# The soak takes minutes: only `make soak` (which sets SMARTQUEUE_SOAK_S) collects it.
collect_ignore = [] if os.environ.get("SMARTQUEUE_SOAK_S") else ["soak"]


@pytest.fixture(scope="session", autouse=True)
def blob_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """File bytes of the Files API go to a temp dir, never the checkout (services started by
    tests inherit it through the environment)."""
    path = tmp_path_factory.mktemp("blobs")
    previous = os.environ.get("SMARTQUEUE_BLOB_DIR")
    os.environ["SMARTQUEUE_BLOB_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("SMARTQUEUE_BLOB_DIR", None)
    else:
        os.environ["SMARTQUEUE_BLOB_DIR"] = previous


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests keep apart by key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A raw client on the test server (for asserting what is stored)."""
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def local_fleet() -> FleetConfig:
    """The loopback fleet of deploy/fleet.local.yaml."""
    return load_fleet(REPO / "deploy" / "fleet.local.yaml")
