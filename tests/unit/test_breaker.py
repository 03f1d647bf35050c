"""The circuit breaker as tables: a breaker and a time in, a gate or the next breaker out."""

from __future__ import annotations

import pytest

from smartqueue.breaker import (
    Breaker,
    BreakerPolicy,
    BreakerState,
    Gate,
    gate,
    on_failure,
    on_success,
    start_probe,
)

POLICY = BreakerPolicy(failure_threshold=3, recovery_s=30.0, probe_timeout_s=300.0)
OPEN_AT_100 = Breaker(BreakerState.OPEN, failures=3, opened_at=100.0, reason="boom")
PROBING_UNTIL_430 = Breaker(
    BreakerState.HALF_OPEN, failures=3, opened_at=100.0, probe_deadline=430.0, reason="boom"
)


@pytest.mark.parametrize(
    ("breaker", "now", "expected"),
    [
        pytest.param(Breaker(), 0.0, Gate.ALLOW, id="closed-allows"),
        pytest.param(Breaker(failures=2), 0.0, Gate.ALLOW, id="closed-below-threshold-allows"),
        pytest.param(OPEN_AT_100, 129.9, Gate.DENY, id="open-denies-before-recovery"),
        pytest.param(OPEN_AT_100, 130.0, Gate.PROBE, id="open-probes-at-recovery"),
        pytest.param(Breaker(BreakerState.OPEN), 0.0, Gate.PROBE, id="open-without-time-probes"),
        pytest.param(PROBING_UNTIL_430, 429.9, Gate.DENY, id="half-open-denies-while-probing"),
        pytest.param(PROBING_UNTIL_430, 430.0, Gate.PROBE, id="half-open-lost-probe-probes"),
        pytest.param(
            Breaker(BreakerState.HALF_OPEN), 0.0, Gate.PROBE, id="half-open-without-deadline"
        ),
    ],
)
def test_gate_answers_by_state_and_time(breaker: Breaker, now: float, expected: Gate) -> None:
    assert gate(breaker, now=now, policy=POLICY) is expected


@pytest.mark.parametrize(
    ("breaker", "now", "expected"),
    [
        pytest.param(OPEN_AT_100, 130.0, PROBING_UNTIL_430, id="open-to-half-open"),
        pytest.param(
            PROBING_UNTIL_430,
            500.0,
            Breaker(
                BreakerState.HALF_OPEN, 3, opened_at=100.0, probe_deadline=800.0, reason="boom"
            ),
            id="lost-probe-gets-a-new-deadline",
        ),
    ],
)
def test_start_probe_is_half_open_until_the_probe_deadline(
    breaker: Breaker, now: float, expected: Breaker
) -> None:
    assert start_probe(breaker, now=now, policy=POLICY) == expected


@pytest.mark.parametrize(
    "breaker",
    [
        pytest.param(Breaker(failures=2, reason="boom"), id="closed-with-failures"),
        pytest.param(OPEN_AT_100, id="open"),
        pytest.param(PROBING_UNTIL_430, id="half-open"),
    ],
)
def test_on_success_closes_and_forgets_failures(breaker: Breaker) -> None:
    assert on_success(breaker) == Breaker()


@pytest.mark.parametrize(
    ("breaker", "expected"),
    [
        pytest.param(Breaker(), Breaker(failures=1, reason="down"), id="first-failure-counts"),
        pytest.param(
            Breaker(failures=1, reason="old"),
            Breaker(failures=2, reason="down"),
            id="below-threshold-stays-closed",
        ),
        pytest.param(
            Breaker(failures=2),
            Breaker(BreakerState.OPEN, 3, opened_at=500.0, reason="down"),
            id="threshold-opens",
        ),
        pytest.param(
            PROBING_UNTIL_430,
            Breaker(BreakerState.OPEN, 4, opened_at=500.0, reason="down"),
            id="failed-probe-reopens",
        ),
        pytest.param(
            Breaker(BreakerState.HALF_OPEN, failures=0),
            Breaker(BreakerState.OPEN, 1, opened_at=500.0, reason="down"),
            id="failed-probe-reopens-below-threshold",
        ),
        pytest.param(
            OPEN_AT_100,
            Breaker(BreakerState.OPEN, 4, opened_at=500.0, reason="down"),
            id="late-failure-restarts-recovery",
        ),
    ],
)
def test_on_failure_counts_and_opens(breaker: Breaker, expected: Breaker) -> None:
    assert on_failure(breaker, now=500.0, reason="down", policy=POLICY) == expected
