"""Pure fault choice and sidecar numbers."""

from __future__ import annotations

import pytest

from smartqueue_sim.faults import FaultMode, FaultSettings, fault_for_request
from smartqueue_sim.latency import builtin_profile
from smartqueue_sim.telemetry import (
    FULL_LOAD_TEMP_C,
    IDLE_TEMP_C,
    ThermalState,
    advance_temperature,
    gpu_util_pct,
    vram_used_mb,
)


@pytest.mark.parametrize(
    ("mode", "rate", "draw", "expected"),
    [
        (FaultMode.ERROR, 1.0, 0.99, FaultMode.ERROR),
        (FaultMode.ERROR, 0.3, 0.29, FaultMode.ERROR),
        (FaultMode.ERROR, 0.3, 0.30, FaultMode.NONE),
        (FaultMode.HANG, 0.0, 0.0, FaultMode.NONE),
        (FaultMode.REFUSE, 1.0, 0.0, FaultMode.NONE),  # refusing happens at the socket
        (FaultMode.NONE, 1.0, 0.0, FaultMode.NONE),
    ],
)
def test_fault_for_request_hits_the_share_given_by_rate(
    mode: FaultMode, rate: float, draw: float, expected: FaultMode
) -> None:
    assert fault_for_request(FaultSettings(mode=mode, rate=rate), draw=draw) is expected


@pytest.mark.parametrize(
    ("busy", "slots", "expected"),
    [(0, 4, 0), (1, 4, 70), (2, 4, 80), (4, 4, 100), (6, 4, 100), (1, 1, 100)],
)
def test_gpu_util_rises_with_busy_slots(busy: int, slots: int, expected: int) -> None:
    assert gpu_util_pct(busy_slots=busy, slots=slots) == expected


def test_vram_grows_with_active_contexts_and_stops_at_the_total() -> None:
    profile = builtin_profile("default")
    idle = vram_used_mb(profile, active_contexts=0, vram_total_mb=24576)
    busy = vram_used_mb(profile, active_contexts=2, vram_total_mb=24576)
    assert busy - idle == 2 * profile.context_vram_mb
    assert vram_used_mb(profile, active_contexts=1000, vram_total_mb=24576) == 24576


def test_temperature_drifts_up_under_load_and_back_down_when_idle() -> None:
    start = ThermalState(temp_c=IDLE_TEMP_C, at_s=0.0)
    hot = advance_temperature(start, util_pct=100, now_s=60.0, time_constant_s=30.0)
    hotter = advance_temperature(hot, util_pct=100, now_s=600.0, time_constant_s=30.0)
    cooled = advance_temperature(hotter, util_pct=0, now_s=660.0, time_constant_s=30.0)
    assert IDLE_TEMP_C < hot.temp_c < hotter.temp_c <= FULL_LOAD_TEMP_C
    assert hotter.temp_c == pytest.approx(FULL_LOAD_TEMP_C, abs=0.01)
    assert IDLE_TEMP_C < cooled.temp_c < hotter.temp_c


def test_temperature_ignores_a_clock_that_goes_backwards() -> None:
    state = ThermalState(temp_c=50.0, at_s=10.0)
    assert advance_temperature(state, util_pct=100, now_s=5.0, time_constant_s=30.0) == state
