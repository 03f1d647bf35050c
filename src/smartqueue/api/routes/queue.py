"""The queue at a glance: overview, consumers and GPUs."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from smartqueue.api.deps import CallerDep, ServicesDep
from smartqueue.api.services import Services
from smartqueue.engines import EngineView
from smartqueue.fleet_state import breaker_policy, read_fleet_state
from smartqueue.models import (
    PRIORITY_ORDER,
    BreakerView,
    ConsumerInfo,
    ConsumerList,
    DepthView,
    GpuList,
    GpuView,
    JobCounts,
    QueueOverview,
    SpeedView,
    Thresholds,
)
from smartqueue.owners import Caller
from smartqueue.planner import DEFAULT_PRIOR, MIN_SAMPLE_WEIGHT, Speed, SpeedStats, fleet_speeds
from smartqueue.scoring import (
    GpuSnapshot,
    ScoreTerms,
    is_down,
    is_fresh,
    score_terms,
    trusted_engine,
    trusted_sidecar,
)

router = APIRouter(tags=["queue"])


async def live_consumers(services: Services, caller: Caller) -> list[ConsumerInfo]:
    """Consumers of every replica that sent a heartbeat recently (job ids for admins only)."""
    store, ttl_s = services.store, services.settings.consumer_ttl_s
    consumers = await store.consumers.live(now=time.time(), ttl_s=ttl_s)
    if caller.admin:
        return consumers
    return [consumer.model_copy(update={"current_job": None}) for consumer in consumers]


async def fleet_view(services: Services) -> list[GpuView]:
    """The GPUs with live health: probe, load score, breaker, slots in use across replicas."""
    fleet, now = services.fleet, time.time()
    live = await read_fleet_state(fleet, services.store, services.prober,
                                  policy=breaker_policy(services.settings), now=now)  # fmt: skip
    stored = await services.store.speeds.read([gpu.config.name for gpu in live])
    speeds = fleet_speeds({name: SpeedStats.from_fields(fields) for name, fields in stored.items()},
                          prior=DEFAULT_PRIOR)  # fmt: skip
    views = []
    for gpu in live:
        breaker, name = gpu.breaker, gpu.config.name
        views.append(GpuView(
            **gpu.config.model_dump(exclude={"api_key_env"}),
            routes=[route for route, members in fleet.routes.items() if name in members],
            slots_in_use=gpu.in_use,
            breaker=BreakerView(state=breaker.state.value, failures=breaker.failures,
                                reason=breaker.reason, opened_at=breaker.opened_at),
            health=health_view(services, name, in_use=gpu.in_use, now=now),
            speed=speed_view(speeds[name]),
        ))  # fmt: skip
    return views


def speed_view(speed: Speed) -> SpeedView:
    """What the planner predicts with for a GPU (`learned`: from its own samples)."""
    return SpeedView(base_s=round(speed.base_s, 4),
                     prefill_s_per_token=round(speed.prefill_s_per_token, 6),
                     decode_s_per_token=round(speed.decode_s_per_token, 5),
                     samples=round(speed.samples, 2),
                     learned=speed.samples >= MIN_SAMPLE_WEIGHT)  # fmt: skip


def health_view(services: Services, gpu: str, *, in_use: int, now: float) -> dict[str, Any] | None:
    """The latest probe of `gpu` as JSON: state flags, load score, each signal's age and share."""
    snapshot = services.prober.snapshots.get(gpu)
    if snapshot is None:
        return None
    max_age_s = services.prober.max_age_s
    slots = services.fleet.gpu(gpu).slots
    terms = score_terms(snapshot, in_flight=in_use, slots=slots, now=now, max_age_s=max_age_s)
    down = is_down(snapshot, now=now, max_age_s=max_age_s)
    stale = not is_fresh(snapshot, now=now, max_age_s=max_age_s)
    return {
        "state": _probe_state(snapshot, down=down, stale=stale),
        "reachable": snapshot.reachable,
        "down": down,
        "stale": stale,
        "probe_unauthorised": snapshot.unauthorised,
        "engine_frozen": snapshot.frozen,
        "age_s": round(now - snapshot.observed_at, 3),
        "load_score": round(terms.total, 1),
        "sidecar": asdict(snapshot.sidecar) if snapshot.sidecar else None,
        "engine": asdict(snapshot.engine) if snapshot.engine else None,
        "signals": _signals(snapshot, terms, in_use=in_use, now=now, max_age_s=max_age_s),
        "error": snapshot.error,
    }


def _probe_state(snapshot: GpuSnapshot, *, down: bool, stale: bool) -> str:
    if stale:
        return "stale"
    if down:
        return "down"
    return "probe unauthorised" if snapshot.unauthorised else "up"


def _signal(value: object, *, age_s: float | None, trusted: bool, added: float | None) -> Any:
    rounded = None if added is None else round(added, 1)
    return {"value": value, "age_s": age_s, "trusted": trusted, "contributed": rounded}


def _signals(
    snapshot: GpuSnapshot, terms: ScoreTerms, *, in_use: int, now: float, max_age_s: float
) -> dict[str, Any]:
    """Each signal: its value, its age, whether the score believed it, and what it added."""
    sidecar = asdict(snapshot.sidecar) if snapshot.sidecar else None
    sidecar_trusted = trusted_sidecar(snapshot, now=now, max_age_s=max_age_s) is not None
    trusted = trusted_engine(snapshot, now=now, max_age_s=max_age_s) is not None
    view = snapshot.engine or EngineView(snapshot.observed_at)
    age_s = round(now - view.observed_at, 3) if snapshot.engine else None
    return {
        "sidecar": _signal(sidecar, age_s=round(now - snapshot.observed_at, 3),
                           trusted=sidecar_trusted, added=terms.sidecar),
        "in_flight": _signal(in_use, age_s=0.0, trusted=True, added=None),
        "running": _signal(view.running, age_s=age_s, trusted=trusted, added=terms.busy),
        "waiting": _signal(view.waiting, age_s=age_s, trusted=trusted, added=terms.waiting),
        "capacity": _signal(view.capacity, age_s=age_s, trusted=trusted, added=None),
        "kv_pressure": _signal(view.kv_pressure, age_s=age_s, trusted=trusted,
                               added=terms.kv_pressure),
        "model_resident": _signal(view.model_resident, age_s=age_s, trusted=trusted,
                                  added=terms.cold_start),
        "model_vram_mb": _signal(view.model_vram_mb, age_s=age_s, trusted=trusted, added=None),
    }  # fmt: skip


@router.get("/status", response_model=QueueOverview, summary="Queue overview")
async def overview(services: ServicesDep, caller: CallerDep) -> QueueOverview:
    """Depth per priority, in-flight and dead-letter counts, thresholds, consumers and GPUs.

    Consumers' current job ids are shown to admins only.
    """
    store, pressure = services.store, services.backpressure
    by_route = await store.overview.depths_by_route()
    depths = {p: sum(route[p] for route in by_route.values()) for p in PRIORITY_ORDER}
    return QueueOverview(
        depth=DepthView(
            **{p.value: d for p, d in depths.items()}, total=sum(depths.values()), by_route=by_route
        ),
        in_flight=await store.overview.in_flight(),
        delayed=await store.overview.delayed(),
        dlq_depth=await store.dlq.length(),
        thresholds=Thresholds(
            warn=pressure.warn_depth,
            overloaded=pressure.overload_depth,
            open=pressure.open_depth,
            ceilings={priority: pressure.ceiling(priority) for priority in pressure.ceilings},
        ),
        consumers=await live_consumers(services, caller),
        gpus=await fleet_view(services),
        jobs=JobCounts(
            completed=services.metrics.outcome_count("completed"),
            cancelled=services.metrics.outcome_count("cancelled"),
        ),
    )


@router.get("/consumers", response_model=ConsumerList, summary="Live consumers")
async def consumers(services: ServicesDep, caller: CallerDep) -> ConsumerList:
    """Consumer tasks of every replica; dead ones disappear once their heartbeat is stale.

    `current_job` is shown to admins only (null for everyone else).
    """
    return ConsumerList(consumers=await live_consumers(services, caller))


@router.get("/gpus", response_model=GpuList, summary="The fleet")
async def gpus(services: ServicesDep) -> GpuList:
    """Every GPU of the fleet file with what smartqueue knows of it."""
    return GpuList(gpus=await fleet_view(services))
