"""An app on the test Redis, driven in-process through httpx with its lifespan running."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from smartqueue.config import FleetConfig, Settings
from smartqueue.store import Store
from tests.support.app_client import app_client
from tests.support.redis_server import RedisServer

ADMIN_TOKEN = "test-admin-token"
OWNER_SECRET = "test-owner-secret"

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(redis_server: RedisServer, key_prefix: str) -> SettingsFactory:
    """Settings on the test Redis and prefix, with overrides."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_server.url,
            "key_prefix": key_prefix,
            "admin_token": ADMIN_TOKEN,
            "owner_secret": OWNER_SECRET,
            "consumers": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    """Default test settings."""
    return make_settings()


@pytest.fixture
async def client(settings: Settings, local_fleet: FleetConfig) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app in-process."""
    async with app_client(settings, local_fleet) as http:
        yield http


CHAT = {"model": "any", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture
async def store(settings: Settings, local_fleet: FleetConfig) -> AsyncIterator[Store]:
    """A store on the same Redis and prefix as the app (to act as the engine would)."""
    store = Store.connect(settings, routes=local_fleet.route_names)
    yield store
    await store.aclose()
