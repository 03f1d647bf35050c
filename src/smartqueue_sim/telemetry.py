"""Pure sidecar numbers of a simulated GPU: utilisation, VRAM and a drifting temperature."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from smartqueue_sim.latency import LatencyProfile

IDLE_TEMP_C = 38.0
FULL_LOAD_TEMP_C = 82.0
THERMAL_TIME_CONSTANT_S = 60.0
# One active request already keeps a GPU mostly busy; more slots add the rest.
SINGLE_REQUEST_UTIL_PCT = 70.0


@dataclass(frozen=True, slots=True)
class ThermalState:
    """Temperature at a moment (seconds on the sim's monotonic clock)."""

    temp_c: float
    at_s: float


def gpu_util_pct(*, busy_slots: int, slots: int) -> int:
    """Utilisation in percent: 0 when idle, high with one busy slot, 100 when all are busy."""
    if busy_slots <= 0:
        return 0
    if slots <= 1:
        return 100
    extra = (100.0 - SINGLE_REQUEST_UTIL_PCT) * (min(busy_slots, slots) - 1) / (slots - 1)
    return round(SINGLE_REQUEST_UTIL_PCT + extra)


def vram_used_mb(profile: LatencyProfile, *, active_contexts: int, vram_total_mb: int) -> int:
    """VRAM in use: the weights plus one context per active request, capped at the total."""
    used = profile.model_vram_mb + profile.context_vram_mb * max(0, active_contexts)
    return min(vram_total_mb, used)


def target_temp_c(util_pct: float) -> float:
    """Temperature the GPU settles at under a steady utilisation."""
    return IDLE_TEMP_C + (FULL_LOAD_TEMP_C - IDLE_TEMP_C) * util_pct / 100.0


def advance_temperature(
    state: ThermalState, *, util_pct: float, now_s: float, time_constant_s: float
) -> ThermalState:
    """Temperature at `now_s` after running at `util_pct` since `state.at_s` (Newton cooling)."""
    elapsed_s = max(0.0, now_s - state.at_s)
    target = target_temp_c(util_pct)
    temp = target + (state.temp_c - target) * math.exp(-elapsed_s / time_constant_s)
    return ThermalState(temp_c=temp, at_s=max(now_s, state.at_s))


class GpuReading(BaseModel):
    """The sidecar's `/health` JSON, in the draft's field names."""

    model_config = ConfigDict(frozen=True)

    gpu_util_pct: int
    vram_used_mb: int
    vram_total_mb: int
    temp_c: float
