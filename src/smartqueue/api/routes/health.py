"""Readiness and liveness."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Response

from smartqueue.api.deps import ServicesDep, StoreDep
from smartqueue.errors import StoreUnavailable
from smartqueue.metrics import ClusterReading
from smartqueue.models import HealthView
from smartqueue.scrape import read_cluster

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthView,
    responses={503: {"model": HealthView, "description": "Redis does not answer"}},
)
async def health(store: StoreDep, response: Response) -> HealthView:
    """Ready when Redis answers; never depends on the GPUs (the queue absorbs their outages)."""
    try:
        await store.ping()
    except StoreUnavailable:
        response.status_code = 503
        response.headers["Retry-After"] = "1"
        return HealthView(status="unavailable", redis="down")
    return HealthView(status="ok", redis="up")


@router.get("/livez")
async def livez() -> dict[str, str]:
    """The process answers; checks nothing else."""
    return {"status": "ok"}


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics: this replica's, and the cluster's as Redis holds them right now."""
    reading: ClusterReading | None = None
    try:
        reading = await read_cluster(services.settings, services.fleet, store=services.store,
                                     prober=services.prober, now=time.time())  # fmt: skip
    except StoreUnavailable as error:  # the replica's own metrics still tell something
        log.warning("metrics: store unavailable", extra={"error": error.message})
    return Response(services.metrics.render(reading), media_type="text/plain; version=0.0.4")
