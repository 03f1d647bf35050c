"""The queue at a glance: overview, consumers and GPUs."""

from __future__ import annotations

import time

from fastapi import APIRouter

from smartqueue.api.deps import ServicesDep
from smartqueue.api.services import Services
from smartqueue.models import (
    ConsumerInfo,
    ConsumerList,
    DepthView,
    GpuList,
    GpuView,
    QueueOverview,
    Thresholds,
)

router = APIRouter(tags=["queue"])


async def live_consumers(services: Services) -> list[ConsumerInfo]:
    """Consumers of every replica that sent a heartbeat recently."""
    return await services.store.consumers(now=time.time(), ttl_s=services.settings.consumer_ttl_s)


def fleet_view(services: Services) -> list[GpuView]:
    """The GPUs as configured, with the routes that may use each."""
    fleet = services.fleet
    return [
        GpuView(
            **gpu.model_dump(exclude={"api_key_env"}),
            routes=[route for route, members in fleet.routes.items() if gpu.name in members],
        )
        for gpu in fleet.gpus
    ]


@router.get("/status", response_model=QueueOverview, summary="Queue overview")
async def overview(services: ServicesDep) -> QueueOverview:
    """Depth per priority, in-flight and dead-letter counts, thresholds, consumers and GPUs."""
    store, pressure = services.store, services.backpressure
    depths = await store.depths()
    for priority, depth in depths.items():
        services.metrics.depth.labels(priority.value).set(depth)
    return QueueOverview(
        depth=DepthView(**{p.value: d for p, d in depths.items()}, total=sum(depths.values())),
        in_flight=await store.in_flight(),
        delayed=await store.delayed_count(),
        dlq_depth=await store.dlq_length(),
        thresholds=Thresholds(
            warn=pressure.warn_depth,
            overloaded=pressure.overload_depth,
            open=pressure.open_depth,
            ceilings={priority: pressure.ceiling(priority) for priority in pressure.ceilings},
        ),
        consumers=await live_consumers(services),
        gpus=fleet_view(services),
    )


@router.get("/consumers", response_model=ConsumerList, summary="Live consumers")
async def consumers(services: ServicesDep) -> ConsumerList:
    """Consumer tasks of every replica; dead ones disappear once their heartbeat is stale."""
    return ConsumerList(consumers=await live_consumers(services))


@router.get("/gpus", response_model=GpuList, summary="The fleet")
async def gpus(services: ServicesDep) -> GpuList:
    """Every GPU of the fleet file with what smartqueue knows of it."""
    return GpuList(gpus=fleet_view(services))
