"""The app in-process: its lifespan (and engine) running, reached through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager

from smartqueue.api.app import create_app
from smartqueue.config import FleetConfig, Settings


@asynccontextmanager
async def app_client(
    settings: Settings, fleet: FleetConfig, *, gpus: httpx.AsyncClient | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on a fresh app for `settings` and `fleet` (`gpus`: how it reaches them)."""
    app = create_app(settings, fleet, http=gpus)
    async with LifespanManager(app, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sq") as client:
            yield client
