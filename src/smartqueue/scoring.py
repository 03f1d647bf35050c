"""Pure GPU load scoring and choice: metrics in, a ranking out.

The draft's sidecar score, `0.6·util + 0.3·vram% + 0.1·max(0, temp - 60)`, is a weak signal on
its own (one request drives utilisation to ~100 %), so the engine's own queue numbers and
smartqueue's in-flight count weigh in too: every busy slot adds `BUSY_WEIGHT / slots` and every
request waiting inside the server adds `WAITING_WEIGHT / slots`.
"""

from __future__ import annotations

from dataclasses import dataclass

BUSY_WEIGHT = 50.0
WAITING_WEIGHT = 100.0
UNKNOWN_SIDECAR_SCORE = 60.0  # no fresh sidecar numbers: assume busy, never idle
CLEARLY_LESS_LOADED = 25.0  # a fallback GPU must beat the preferred one by this much


@dataclass(frozen=True)
class SidecarMetrics:
    """The sidecar's /health numbers."""

    gpu_util_pct: float
    vram_used_mb: float
    vram_total_mb: float
    temp_c: float

    @property
    def vram_pct(self) -> float:
        """VRAM in use, percent (100 when the total is unknown)."""
        return 100.0 * self.vram_used_mb / self.vram_total_mb if self.vram_total_mb > 0 else 100.0


@dataclass(frozen=True)
class EngineMetrics:
    """What the inference server says of its own queue (None: the engine doesn't tell)."""

    running: int | None = None
    waiting: int | None = None
    kv_cache_pct: float | None = None


@dataclass(frozen=True)
class GpuSnapshot:
    """One probe of a GPU; `reachable` is False when its engine refused or timed out."""

    observed_at: float
    reachable: bool
    sidecar: SidecarMetrics | None = None
    engine: EngineMetrics | None = None
    error: str | None = None


def sidecar_score(metrics: SidecarMetrics) -> float:
    """The draft's load score over sidecar metrics (0 idle … ~100 saturated)."""
    return (
        0.6 * metrics.gpu_util_pct + 0.3 * metrics.vram_pct + 0.1 * max(0.0, metrics.temp_c - 60.0)
    )


def sidecar_says_down(metrics: SidecarMetrics) -> bool:
    """The draft's cut-off: VRAM above 95 %, or utilisation above 98 % at over 85 °C."""
    return metrics.vram_pct > 95.0 or (metrics.gpu_util_pct > 98.0 and metrics.temp_c > 85.0)


def is_fresh(snapshot: GpuSnapshot | None, *, now: float, max_age_s: float) -> bool:
    """A snapshot younger than `max_age_s`; older ones count as unknown, not as idle."""
    return snapshot is not None and now - snapshot.observed_at <= max_age_s


def is_down(snapshot: GpuSnapshot | None, *, now: float, max_age_s: float) -> bool:
    """Down when a fresh probe found the engine unreachable or the sidecar past its cut-off."""
    if snapshot is None or not is_fresh(snapshot, now=now, max_age_s=max_age_s):
        return False
    if not snapshot.reachable:
        return True
    return snapshot.sidecar is not None and sidecar_says_down(snapshot.sidecar)


def load_score(
    snapshot: GpuSnapshot | None, *, in_flight: int, slots: int, now: float, max_age_s: float
) -> float:
    """Lower is less loaded: sidecar score plus busy and waiting slots (stale → pessimistic)."""
    fresh = is_fresh(snapshot, now=now, max_age_s=max_age_s)
    sidecar = snapshot.sidecar if fresh and snapshot else None
    engine = snapshot.engine if fresh and snapshot else None
    base = sidecar_score(sidecar) if sidecar else UNKNOWN_SIDECAR_SCORE
    running = max(in_flight, engine.running or 0) if engine else in_flight
    waiting = engine.waiting or 0 if engine else 0
    return base + BUSY_WEIGHT * running / slots + WAITING_WEIGHT * waiting / slots


@dataclass(frozen=True)
class Candidate:
    """A GPU that could take a job right now, with its load score."""

    name: str
    score: float


def choose_gpu(route_order: list[str], available: dict[str, float]) -> str | None:
    """The route's preferred available GPU, unless another available one is clearly less loaded.

    `route_order` is the route's GPUs, preferred first; `available` maps the GPUs that can take
    a job now (up, breaker allowing, free slot) to their load score.
    """
    candidates = [name for name in route_order if name in available]
    if not candidates:
        return None
    preferred = candidates[0]
    best = min(candidates, key=lambda name: (available[name], route_order.index(name)))
    if available[preferred] - available[best] > CLEARLY_LESS_LOADED:
        return best
    return preferred


@dataclass(frozen=True)
class GpuState:
    """What the planner knows of one GPU right now."""

    name: str
    slots: int
    in_use: int
    gate_open: bool  # the breaker allows a job (or a probe)
    snapshot: GpuSnapshot | None


@dataclass(frozen=True)
class Assignment:
    """Routes a GPU should take its next job from, best GPU first."""

    gpu: str
    routes: list[str]
    score: float


def plan_dispatch(
    routes: dict[str, list[str]], gpus: list[GpuState], *, now: float, max_age_s: float
) -> list[Assignment]:
    """Which GPU serves which routes now: each route goes to its chosen available GPU.

    A GPU is available when its breaker allows, it is not down, and it has a free slot. The
    result lists GPUs least loaded first, so a consumer tries the best one first.
    """
    scores = {
        gpu.name: load_score(gpu.snapshot, in_flight=gpu.in_use, slots=gpu.slots, now=now,
                             max_age_s=max_age_s)
        for gpu in gpus
        if gpu.gate_open and gpu.in_use < gpu.slots
        and not is_down(gpu.snapshot, now=now, max_age_s=max_age_s)
    }  # fmt: skip
    served: dict[str, list[str]] = {}
    for route, order in routes.items():
        chosen = choose_gpu(order, scores)
        if chosen is not None:
            served.setdefault(chosen, []).append(route)
    plan = [Assignment(gpu, served_routes, scores[gpu]) for gpu, served_routes in served.items()]
    return sorted(plan, key=lambda assignment: assignment.score)
