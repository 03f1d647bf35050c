"""The FastAPI app factory; its lifespan owns the shared clients and background tasks."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from smartqueue import __version__
from smartqueue.api.errors import install_error_handlers
from smartqueue.api.http_metrics import HttpMetrics
from smartqueue.api.routes import (
    admin,
    batches,
    dashboard,
    docs,
    files,
    health,
    jobs,
    openai,
    queue,
)
from smartqueue.api.services import Services
from smartqueue.config import FleetConfig, Settings
from smartqueue.errors import StoreUnavailable

log = logging.getLogger(__name__)

DESCRIPTION = """\
smartqueue keeps inference requests durably in Redis Streams and dispatches each to the best
GPU of its route as soon as one can take it. Nginx hands requests here when no GPU can take
them; clients may also submit directly with `POST /enqueue` and follow `GET /status/{job_id}`.
"""


def create_app(
    settings: Settings, fleet: FleetConfig, *, http: httpx.AsyncClient | None = None
) -> FastAPI:
    """The smartqueue service for `settings` and `fleet` (`http`: see Services.build)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.build(settings, fleet, http=http)
        app.state.services = services
        try:
            await services.store.ensure_groups()
        except StoreUnavailable as error:
            log.warning("starting without Redis", extra={"error": error.message})
        async with services.running():
            gc.freeze()  # what start-up built lives for good: full collections skip it
            yield

    app = FastAPI(
        title="smartqueue", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served offline by routes.docs
    )  # fmt: skip
    install_error_handlers(app)
    app.add_middleware(HttpMetrics)
    for module in (jobs, openai, files, batches, admin, queue, health, dashboard, docs):
        app.include_router(module.router)
    app.include_router(admin.drain_router)
    return app
