"""LiveGpu.plan_gpu: what the planner is told of a GPU from its slots, breaker and probe."""

from __future__ import annotations

import pytest

from smartqueue.breaker import Breaker, Gate
from smartqueue.config import GpuConfig
from smartqueue.engines import EngineView
from smartqueue.fleet_state import COLD_START_S, LiveGpu
from smartqueue.planner import DEFAULT_PRIOR, PlanGpu
from smartqueue.scoring import GpuSnapshot, SidecarMetrics

NOW = 10_000.0
MAX_AGE_S = 20.0
MEAN_S = 4.0
CONFIG = GpuConfig(name="g", url="http://g.local:1", sidecar_url="http://g.local:2",
                   engine="vllm", model="m", slots=4, vram_total_mb=24_000)  # fmt: skip
HOT = SidecarMetrics(gpu_util_pct=10.0, vram_used_mb=23_900.0, vram_total_mb=24_000.0, temp_c=50.0)


def engine(
    *, age_s: float = 1.0, ours_then: int | None = 0, **signals: float | int | bool
) -> GpuSnapshot:
    """A fresh probe whose engine says `signals`, taken while `ours_then` of our jobs ran."""
    view = EngineView(NOW - age_s, **signals)  # type: ignore[arg-type]
    return GpuSnapshot(NOW - 1.0, reachable=True, engine=view, own_in_flight=ours_then)


def planned(
    *, ends: tuple[float | None, ...] = (), gate: Gate = Gate.ALLOW,
    snapshot: GpuSnapshot | None = None,
) -> PlanGpu:  # fmt: skip
    live = LiveGpu(CONFIG, len(ends), Breaker(), "0", gate, snapshot, ends)
    return live.plan_gpu(DEFAULT_PRIOR, now=NOW, max_age_s=MAX_AGE_S, mean_duration_s=MEAN_S)


@pytest.mark.parametrize(
    ("gpu", "can_take", "free_now", "busy_until"),
    [
        pytest.param(planned(), True, 4, (), id="idle"),
        pytest.param(planned(ends=(NOW + 3, NOW + 1)), True, 2, (NOW + 1, NOW + 3), id="ours"),
        pytest.param(planned(ends=(None,)), True, 3, (NOW + MEAN_S / 2,), id="end-unknown"),
        pytest.param(planned(gate=Gate.DENY), False, 4, (), id="breaker-open"),
        pytest.param(planned(gate=Gate.PROBE), True, 1, (), id="one-probe-job"),
        pytest.param(planned(snapshot=GpuSnapshot(NOW - 1, reachable=False)), False, 4, (),
                     id="unreachable"),
        pytest.param(planned(snapshot=GpuSnapshot(NOW - 1, reachable=True, sidecar=HOT)), False,
                     4, (), id="vram-full"),
        pytest.param(planned(snapshot=engine(running=3)), True, 1, (NOW + MEAN_S / 2,) * 3,
                     id="direct-traffic"),
        pytest.param(planned(ends=(NOW + 1,), snapshot=engine(running=1, ours_then=1)), True, 3,
                     (NOW + 1,), id="engine-counts-ours"),
        pytest.param(planned(snapshot=engine(running=2, ours_then=2)), True, 4, (),
                     id="ours-ended-since-the-probe"),
        pytest.param(planned(ends=(NOW + 1,), snapshot=engine(running=3, ours_then=2)), True, 2,
                     (NOW + 1, NOW + MEAN_S / 2), id="direct-beyond-ours-then"),
        pytest.param(planned(snapshot=engine(running=3, ours_then=None)), True, 4, (),
                     id="ours-then-unknown"),
        pytest.param(planned(snapshot=engine(running=3, age_s=MAX_AGE_S + 1)), True, 4, (),
                     id="stale-engine-ignored"),
    ],
)  # fmt: skip
def test_plan_gpu_table(
    gpu: PlanGpu, can_take: bool, free_now: int, busy_until: tuple[float, ...]
) -> None:
    assert (gpu.can_take, gpu.free_now, gpu.busy_until) == (can_take, free_now, busy_until)


def test_a_cold_model_and_kv_pressure_delay_every_start() -> None:
    assert planned().start_delay_s == 0.0
    assert planned(snapshot=engine(model_resident=False)).start_delay_s == COLD_START_S
    assert planned(snapshot=engine(kv_pressure=0.5)).start_delay_s == pytest.approx(MEAN_S / 2)
    frozen = GpuSnapshot(NOW - 1, reachable=True, engine=EngineView(NOW - 1, model_resident=False),
                         frozen=True)  # fmt: skip
    assert planned(snapshot=frozen).start_delay_s == 0.0, "a frozen engine is not believed"


def test_headroom_counts_only_our_jobs_so_direct_traffic_does_not_block_sending() -> None:
    assert planned(ends=(NOW + 1,), snapshot=engine(running=4, ours_then=1)).headroom == 3
    assert planned(ends=(NOW + 1,) * 4).headroom == 0
    assert planned(gate=Gate.PROBE).headroom == 1
