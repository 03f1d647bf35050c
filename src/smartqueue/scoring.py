"""Pure GPU load signals: probes in, trust and a load score out.

The dispatcher chooses GPUs by predicted finish time (smartqueue.planner); this module decides
which probe numbers may be believed (fresh, authorised, not frozen), when a GPU is down, and
the load score shown in `/gpus` and the metrics: a sum of terms (`ScoreTerms`), lower is less
loaded.

- Sidecar: the draft's `0.6·util + 0.3·vram% + 0.1·max(0, temp - 60)`, or `UNKNOWN_SIDECAR_SCORE`
  (60) without fresh numbers. One request drives utilisation to ~100 %, so it is a weak signal.
- Busy: `BUSY_WEIGHT` (50) times the busy fraction of the engine's capacity (its own slot count
  when it tells, else smartqueue's `slots`). Busy is the larger of the engine's own `running`
  and smartqueue's in-flight count: the engine's number includes direct traffic smartqueue
  never routed; ours covers jobs sent but not yet seen by the engine.
- Waiting: `WAITING_WEIGHT` (100) per capacity for requests queued inside the engine: each one
  delays a new job by a whole generation, so it weighs twice a busy slot.
- KV pressure: `KV_PRESSURE_WEIGHT` (40) times the KV cache in use (0..1). A nearly full KV
  cache makes vLLM queue or preempt new sequences even while `waiting` is still 0, so it
  predicts waiting; it weighs less than a full engine (50) because it is a forecast, not a queue.
- Cold start: `COLD_START_PENALTY` (60) when Ollama says the GPU's model is not loaded: loading
  it costs seconds to minutes before the first token, more than a whole busy engine.

Trust: a probe older than `max_age_s` (stale) counts as unknown, pessimistic, never idle. An
engine view is not trusted when it is stale, when the probe was refused (401/403: "probe
unauthorised", not down), or when `is_frozen` found its numbers frozen; an untrusted view adds
nothing, busy falls back to smartqueue's own in-flight, and a frozen one also makes the sidecar
unknown (a host whose exporter froze may report anything).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from smartqueue.engines.view import EngineView

BUSY_WEIGHT = 50.0
WAITING_WEIGHT = 100.0
KV_PRESSURE_WEIGHT = 40.0
COLD_START_PENALTY = 60.0
UNKNOWN_SIDECAR_SCORE = 60.0  # no fresh sidecar numbers: assume busy, never idle
VRAM_DOWN_PCT = 95.0
HOT_UTIL_PCT = 98.0
HOT_TEMP_C = 85.0
FROZEN_AFTER_PROBES = 4  # engine numbers unchanged this many probes while ours moved: frozen


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
class GpuSnapshot:
    """One probe of a GPU.

    `reachable` is False when the engine refused the connection, timed out or answered its
    health check with an error; `unauthorised` when it answered 401/403 to a probe (it is up,
    its signals unknown); `frozen` when the prober found its numbers frozen (`is_frozen`);
    `own_in_flight` smartqueue's own jobs on the GPU when it was probed (None: not read), so the
    engine's count beyond it is traffic that came another way.
    """

    observed_at: float
    reachable: bool
    sidecar: SidecarMetrics | None = None
    engine: EngineView | None = None
    error: str | None = None
    unauthorised: bool = False
    frozen: bool = False
    own_in_flight: int | None = None


def sidecar_score(metrics: SidecarMetrics) -> float:
    """The draft's load score over sidecar metrics (0 idle … ~100 saturated)."""
    return (
        0.6 * metrics.gpu_util_pct + 0.3 * metrics.vram_pct + 0.1 * max(0.0, metrics.temp_c - 60.0)
    )


def sidecar_says_down(metrics: SidecarMetrics) -> bool:
    """The draft's cut-off: VRAM above 95 %, or utilisation above 98 % at over 85 °C."""
    return metrics.vram_pct > VRAM_DOWN_PCT or (
        metrics.gpu_util_pct > HOT_UTIL_PCT and metrics.temp_c > HOT_TEMP_C
    )


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


def trusted_engine(
    snapshot: GpuSnapshot | None, *, now: float, max_age_s: float
) -> EngineView | None:
    """The engine's own view when it may be believed: fresh, authorised, not frozen."""
    if snapshot is None or snapshot.engine is None or snapshot.unauthorised or snapshot.frozen:
        return None
    if now - snapshot.engine.observed_at > max_age_s:
        return None
    return snapshot.engine


def trusted_sidecar(
    snapshot: GpuSnapshot | None, *, now: float, max_age_s: float
) -> SidecarMetrics | None:
    """The sidecar numbers of a fresh probe whose engine numbers are not frozen."""
    if snapshot is None or snapshot.frozen or not is_fresh(snapshot, now=now, max_age_s=max_age_s):
        return None
    return snapshot.sidecar


@dataclass(frozen=True)
class ScoreTerms:
    """What each signal contributed to a load score; `total` is the score."""

    sidecar: float
    busy: float
    waiting: float
    kv_pressure: float
    cold_start: float

    @property
    def total(self) -> float:
        """The load score: the sum of the terms."""
        return self.sidecar + self.busy + self.waiting + self.kv_pressure + self.cold_start


def score_terms(
    snapshot: GpuSnapshot | None, *, in_flight: int, slots: int, now: float, max_age_s: float
) -> ScoreTerms:
    """Each signal's share of the load score (see the module docstring for the weights)."""
    sidecar = trusted_sidecar(snapshot, now=now, max_age_s=max_age_s)
    engine = trusted_engine(snapshot, now=now, max_age_s=max_age_s)
    view = engine or EngineView(0.0)
    capacity = max(1, view.capacity or slots)
    running = max(in_flight, view.running or 0)
    return ScoreTerms(
        sidecar=sidecar_score(sidecar) if sidecar else UNKNOWN_SIDECAR_SCORE,
        busy=BUSY_WEIGHT * running / capacity,
        waiting=WAITING_WEIGHT * (view.waiting or 0) / capacity,
        kv_pressure=KV_PRESSURE_WEIGHT * (view.kv_pressure or 0.0),
        cold_start=COLD_START_PENALTY if view.model_resident is False else 0.0,
    )


def load_score(
    snapshot: GpuSnapshot | None, *, in_flight: int, slots: int, now: float, max_age_s: float
) -> float:
    """Lower is less loaded: the sum of `score_terms` (stale → pessimistic, never idle)."""
    terms = score_terms(snapshot, in_flight=in_flight, slots=slots, now=now, max_age_s=max_age_s)
    return terms.total


@dataclass(frozen=True)
class ProbeRecord:
    """One probe as the frozen-metrics detector sees it: the engine's numbers and ours."""

    engine_numbers: tuple[int | None, int | None] | None  # (running, waiting); None: no view
    in_flight: int  # smartqueue's own jobs on the GPU when it was probed


def direct_running(snapshot: GpuSnapshot, engine: EngineView) -> int:
    """Requests the engine was running that smartqueue did not send (Nginx's direct path): its
    count beyond ours when it was probed (0 when either is unknown)."""
    if engine.running is None or snapshot.own_in_flight is None:
        return 0
    return max(0, engine.running - snapshot.own_in_flight)


def is_frozen(history: Sequence[ProbeRecord], *, probes: int = FROZEN_AFTER_PROBES) -> bool:
    """The engine repeated the same numbers over the last `probes` probes while ours changed.

    A live engine counts the jobs smartqueue sends it: if our own in-flight count went up or
    down (say 0 → 2, idle while the engine says busy, or busy while it says idle) and the
    engine's running/waiting stayed exactly the same, its exporter is stuck, not the GPU.
    """
    recent = list(history)[-probes:]
    if len(recent) < probes:
        return False
    numbers = {record.engine_numbers for record in recent}
    if len(numbers) != 1:
        return False
    (repeated,) = numbers
    if repeated is None or repeated == (None, None):
        return False
    return len({record.in_flight for record in recent}) > 1
