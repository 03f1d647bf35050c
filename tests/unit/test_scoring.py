"""Scoring tables: load score terms, down and stale, frozen metrics, GPU choice, dispatch plan."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from smartqueue.engines import EngineView
from smartqueue.scoring import (
    BUSY_WEIGHT,
    COLD_START_PENALTY,
    KV_PRESSURE_WEIGHT,
    UNKNOWN_SIDECAR_SCORE,
    WAITING_WEIGHT,
    GpuSnapshot,
    ProbeRecord,
    SidecarMetrics,
    is_down,
    is_frozen,
    load_score,
    score_terms,
)

NOW = 10_000.0
MAX_AGE_S = 20.0
IDLE = SidecarMetrics(gpu_util_pct=0.0, vram_used_mb=0.0, vram_total_mb=24_000.0, temp_c=40.0)
WARM = SidecarMetrics(gpu_util_pct=50.0, vram_used_mb=12_000.0, vram_total_mb=24_000.0, temp_c=70.0)
WARM_SCORE = 0.6 * 50 + 0.3 * 50 + 0.1 * 10  # 46


def probe(
    *,
    age_s: float = 1.0,
    reachable: bool = True,
    sidecar: SidecarMetrics | None = IDLE,
    engine: EngineView | None = None,
    unauthorised: bool = False,
    frozen: bool = False,
) -> GpuSnapshot:
    """A snapshot observed `age_s` before NOW."""
    return GpuSnapshot(NOW - age_s, reachable, sidecar, engine, None, unauthorised, frozen)


def view(*, age_s: float = 1.0, **signals: float | int | bool) -> EngineView:
    """An engine view observed `age_s` before NOW."""
    return EngineView(NOW - age_s, **signals)  # type: ignore[arg-type]


def score(snapshot: GpuSnapshot | None, *, in_flight: int = 0, slots: int = 4) -> float:
    """The load score at NOW."""
    return load_score(snapshot, in_flight=in_flight, slots=slots, now=NOW, max_age_s=MAX_AGE_S)


@pytest.mark.parametrize(
    ("snapshot", "in_flight", "expected"),
    [
        pytest.param(None, 0, UNKNOWN_SIDECAR_SCORE, id="never-probed-is-unknown"),
        pytest.param(None, 2, UNKNOWN_SIDECAR_SCORE + BUSY_WEIGHT / 2, id="never-probed-own-jobs"),
        pytest.param(probe(age_s=60), 0, UNKNOWN_SIDECAR_SCORE, id="stale-idle-is-not-idle"),
        pytest.param(
            probe(age_s=60, engine=view(age_s=60, running=0)), 0, UNKNOWN_SIDECAR_SCORE,
            id="stale-engine-zero-is-not-idle",
        ),
        pytest.param(probe(), 0, 0.0, id="fresh-idle"),
        pytest.param(probe(sidecar=WARM), 0, WARM_SCORE, id="sidecar-formula"),
        pytest.param(probe(sidecar=None), 0, UNKNOWN_SIDECAR_SCORE, id="no-sidecar-is-unknown"),
        pytest.param(probe(), 1, BUSY_WEIGHT / 4, id="own-in-flight"),
        pytest.param(
            probe(engine=view(running=2)), 0, BUSY_WEIGHT * 2 / 4, id="direct-traffic-counts"
        ),
        pytest.param(
            probe(engine=view(running=1)), 3, BUSY_WEIGHT * 3 / 4, id="own-count-when-higher"
        ),
        pytest.param(
            probe(engine=view(running=4, waiting=2)), 0, BUSY_WEIGHT + WAITING_WEIGHT * 2 / 4,
            id="waiting-inside-the-engine",
        ),
        pytest.param(
            probe(engine=view(running=2, capacity=8)), 0, BUSY_WEIGHT * 2 / 8,
            id="engine-capacity-scales-busy",
        ),
        pytest.param(
            probe(engine=view(kv_pressure=0.0)), 0, 0.0, id="kv-empty-adds-nothing"
        ),
        pytest.param(
            probe(engine=view(kv_pressure=0.99)), 0, KV_PRESSURE_WEIGHT * 0.99, id="kv-nearly-full"
        ),
        pytest.param(
            probe(engine=view(model_resident=False)), 0, COLD_START_PENALTY, id="cold-start"
        ),
        pytest.param(probe(engine=view(model_resident=True)), 0, 0.0, id="model-resident"),
        pytest.param(
            probe(engine=view(age_s=60, running=3)), 0, 0.0, id="stale-engine-view-untrusted"
        ),
        pytest.param(
            probe(engine=view(running=4, waiting=4), unauthorised=True), 1, BUSY_WEIGHT / 4,
            id="unauthorised-probe-falls-back-to-own-count",
        ),
        pytest.param(
            probe(sidecar=WARM, engine=view(running=0), frozen=True), 2,
            UNKNOWN_SIDECAR_SCORE + BUSY_WEIGHT * 2 / 4, id="frozen-own-count-unknown-sidecar",
        ),
        pytest.param(
            probe(engine=view(running=4), frozen=True), 0, UNKNOWN_SIDECAR_SCORE,
            id="frozen-busy-numbers-ignored",
        ),
    ],
)  # fmt: skip
def test_load_score_table(snapshot: GpuSnapshot | None, in_flight: int, expected: float) -> None:
    assert score(snapshot, in_flight=in_flight) == pytest.approx(expected)


def test_load_score_kv_pressure_separates_otherwise_equal_gpus() -> None:
    empty = score(probe(engine=view(running=1, kv_pressure=0.0)))
    full = score(probe(engine=view(running=1, kv_pressure=0.99)))

    assert full - empty == pytest.approx(KV_PRESSURE_WEIGHT * 0.99)


def test_score_terms_add_up_to_the_load_score() -> None:
    snapshot = probe(
        sidecar=WARM, engine=view(running=2, waiting=1, kv_pressure=0.5, model_resident=False)
    )

    terms = score_terms(snapshot, in_flight=1, slots=4, now=NOW, max_age_s=MAX_AGE_S)

    assert (terms.sidecar, terms.busy, terms.waiting) == pytest.approx((WARM_SCORE, 25.0, 25.0))
    assert (terms.kv_pressure, terms.cold_start) == (20.0, COLD_START_PENALTY)
    assert terms.total == pytest.approx(score(snapshot, in_flight=1))


def sidecar(*, util: float = 10.0, vram_pct: float = 10.0, temp_c: float = 50.0) -> SidecarMetrics:
    """Sidecar numbers with VRAM given as a percentage of 10 000 MB."""
    return SidecarMetrics(util, vram_pct * 100, 10_000.0, temp_c)


@pytest.mark.parametrize(
    ("snapshot", "down"),
    [
        pytest.param(None, False, id="never-probed"),
        pytest.param(probe(reachable=False), True, id="unreachable"),
        pytest.param(probe(reachable=False, age_s=60), False, id="stale-unreachable-is-unknown"),
        pytest.param(probe(unauthorised=True), False, id="unauthorised-is-not-down"),
        pytest.param(probe(sidecar=sidecar(vram_pct=95.0)), False, id="vram-95"),
        pytest.param(probe(sidecar=sidecar(vram_pct=95.5)), True, id="vram-over-95"),
        pytest.param(probe(sidecar=sidecar(util=99, temp_c=86)), True, id="hot-and-saturated"),
        pytest.param(probe(sidecar=sidecar(util=99, temp_c=85)), False, id="saturated-at-85c"),
        pytest.param(probe(sidecar=sidecar(util=98, temp_c=90)), False, id="hot-at-98pct"),
        pytest.param(probe(sidecar=sidecar(util=100, temp_c=50)), False, id="busy-but-cool"),
    ],
)
def test_is_down_table(snapshot: GpuSnapshot | None, down: bool) -> None:
    assert is_down(snapshot, now=NOW, max_age_s=MAX_AGE_S) is down


def records(numbers: Sequence[tuple[int, int] | None], in_flight: list[int]) -> list[ProbeRecord]:
    """Probe records pairing engine numbers with our own in-flight counts."""
    return [ProbeRecord(n, own) for n, own in zip(numbers, in_flight, strict=True)]


@pytest.mark.parametrize(
    ("history", "frozen"),
    [
        pytest.param(records([(2, 0)] * 3, [0, 1, 2]), False, id="too-few-probes"),
        pytest.param(records([(2, 0)] * 4, [0, 0, 0, 0]), False, id="steady-both"),
        pytest.param(records([(2, 0)] * 4, [0, 2, 2, 0]), True, id="busy-while-we-go-idle"),
        pytest.param(records([(0, 0)] * 4, [0, 1, 3, 3]), True, id="idle-while-we-run-jobs"),
        pytest.param(
            records([(0, 0), (1, 0), (3, 0), (3, 0)], [0, 1, 3, 3]), False, id="engine-follows"
        ),
        pytest.param(records([None] * 4, [0, 1, 2, 3]), False, id="no-engine-view"),
        pytest.param(
            [ProbeRecord((None, None), own) for own in (0, 1, 2, 3)], False, id="no-numbers"
        ),
        pytest.param(
            records([(5, 1)] + [(2, 0)] * 4, [9, 0, 2, 2, 0]), True, id="only-the-last-n-count"
        ),
    ],
)
def test_is_frozen_table(history: list[ProbeRecord], frozen: bool) -> None:
    assert is_frozen(history) is frozen
