"""Backpressure decisions as tables: thresholds in, answers out."""

from __future__ import annotations

import pytest

from smartqueue.config import Settings
from smartqueue.models import Priority
from smartqueue.policy import Backpressure, DrainMeter

PRESSURE = Backpressure.from_settings(Settings())


@pytest.mark.parametrize(
    ("depth", "expected"),
    [(30, 1), (39, 1), (40, 5), (41, 10), (45, 30), (49, 50), (50, 30), (80, 30)],
)
def test_retry_after_is_an_integer_from_1_to_60(depth: int, expected: int) -> None:
    assert PRESSURE.retry_after_s(depth) == expected


@pytest.mark.parametrize(
    ("depth", "drain_per_s", "expected"),
    [(40, 0.5, 2), (45, 0.5, 12), (49, 10.0, 1), (45, 0.01, 60)],
)
def test_retry_after_follows_a_measured_drain_rate(
    depth: int, drain_per_s: float, expected: int
) -> None:
    assert PRESSURE.retry_after_s(depth, drain_per_s=drain_per_s) == expected


@pytest.mark.parametrize(
    ("priority", "ceiling"), [(Priority.LOW, 30), (Priority.NORMAL, 40), (Priority.HIGH, 50)]
)
def test_ceiling_per_priority_defaults_to_the_draft_thresholds(
    priority: Priority, ceiling: int
) -> None:
    assert PRESSURE.ceiling(priority) == ceiling


def test_ceiling_never_exceeds_the_open_depth() -> None:
    pressure = Backpressure.from_settings(Settings(ceiling_high=90, queue_open_depth=50))

    assert pressure.ceiling(Priority.HIGH) == 50


@pytest.mark.parametrize(("depth", "warns"), [(0, False), (29, False), (30, True), (39, True)])
def test_warning_starts_at_the_warn_depth(depth: int, warns: bool) -> None:
    assert (PRESSURE.warning(depth) is not None) is warns


def test_drain_meter_measures_dispatches_per_second_over_its_window() -> None:
    meter = DrainMeter(window_s=60)
    meter.add(100.0, 10)
    assert meter.rate_per_s() is None  # one sample: nothing to measure yet
    meter.add(104.0, 30)

    assert meter.rate_per_s() == 5.0


def test_drain_meter_forgets_samples_older_than_its_window() -> None:
    meter = DrainMeter(window_s=10)
    meter.add(0.0, 0)
    meter.add(5.0, 100)
    meter.add(20.0, 110)

    assert meter.samples == [(20.0, 110)]
    assert meter.rate_per_s() is None


@pytest.mark.parametrize(("now", "wanted"), [(100.5, False), (101.0, True)])
def test_drain_meter_samples_at_most_once_a_second(now: float, wanted: bool) -> None:
    meter = DrainMeter()
    meter.add(100.0, 1)

    assert meter.wants_sample(now) is wanted


def test_drain_meter_idle_queue_has_no_rate() -> None:
    meter = DrainMeter()
    meter.add(0.0, 7)
    meter.add(30.0, 7)

    assert meter.rate_per_s() is None
