"""What `GET /metrics` reads at scrape time: the cluster-wide numbers, from Redis.

Depths, dead letters, delayed retries, live consumers, and per GPU its slots, jobs in flight
and breaker as every replica shares them; the load score and signals come from this replica's
latest probe of the GPU (every replica probes the whole fleet).
"""

from __future__ import annotations

from dataclasses import asdict

from smartqueue.config import FleetConfig, Settings
from smartqueue.fleet import FleetProber
from smartqueue.fleet_state import LiveGpu, breaker_policy, read_fleet_state
from smartqueue.metrics import ClusterReading, GpuReading
from smartqueue.scoring import GpuSnapshot, score_terms
from smartqueue.store import Store


async def read_cluster(
    settings: Settings, fleet: FleetConfig, *, store: Store, prober: FleetProber, now: float
) -> ClusterReading:
    """The numbers every replica's scrape shows alike (signals: this replica's probes)."""
    live = await read_fleet_state(fleet, store, prober, policy=breaker_policy(settings), now=now)
    held = await store.overview.slots_held([gpu.config.name for gpu in live])
    depths = await store.overview.depths_by_route()
    return ClusterReading(
        depths={route: {p.value: n for p, n in by.items()} for route, by in depths.items()},
        dlq_depth=await store.dlq.length(),
        delayed_retries=await store.overview.delayed(),
        consumers_live=await store.consumers.count_live(now=now, ttl_s=settings.consumer_ttl_s),
        gpus=[
            gpu_reading(gpu, held=held[gpu.config.name], now=now, max_age_s=prober.max_age_s)
            for gpu in live
        ],
    )


def gpu_reading(gpu: LiveGpu, *, held: int, now: float, max_age_s: float) -> GpuReading:
    """One GPU's gauges: shared slots and breaker, and what its latest probe said."""
    snapshot, slots = gpu.snapshot, gpu.config.slots
    base = GpuReading(gpu.config.name, slots, gpu.in_use, held, gpu.breaker.state.value)
    if snapshot is None:
        return base
    terms = score_terms(snapshot, in_flight=gpu.in_use, slots=slots, now=now, max_age_s=max_age_s)
    oldest = min(snapshot.observed_at, snapshot.engine.observed_at if snapshot.engine else now)
    return GpuReading(base.name, slots, gpu.in_use, held, base.breaker_state,
                      load_score=terms.total, signals=signals(snapshot, in_use=gpu.in_use),
                      signal_age_s=max(0.0, now - oldest))  # fmt: skip


def signals(snapshot: GpuSnapshot, *, in_use: int) -> dict[str, float]:
    """Every numeric signal of a probe (sidecar and engine), plus smartqueue's own in-flight."""
    found: dict[str, float] = {"in_flight": float(in_use)}
    sources = [asdict(snapshot.sidecar) if snapshot.sidecar else {},
               asdict(snapshot.engine) if snapshot.engine else {}]  # fmt: skip
    for source in sources:
        for name, value in source.items():
            if name != "observed_at" and isinstance(value, int | float):
                found[name] = float(value)  # a bool (model_resident) becomes 0 or 1
    return found
