"""Backpressure as tables: ceilings, the warning and Retry-After of a refusal (with drain rate)."""

from __future__ import annotations

import pytest

from smartqueue.models import Priority
from smartqueue.policy import Backpressure

CEILINGS = {Priority.HIGH: 50, Priority.NORMAL: 40, Priority.LOW: 30}
PRESSURE = Backpressure(warn_depth=30, overload_depth=40, open_depth=50, ceilings=CEILINGS)


@pytest.mark.parametrize(
    ("ceilings", "open_depth", "priority", "expected"),
    [
        pytest.param(CEILINGS, 50, Priority.LOW, 30, id="low"),
        pytest.param(CEILINGS, 50, Priority.NORMAL, 40, id="normal"),
        pytest.param(CEILINGS, 50, Priority.HIGH, 50, id="high"),
        pytest.param({**CEILINGS, Priority.HIGH: 90}, 50, Priority.HIGH, 50, id="open-caps-high"),
        pytest.param(CEILINGS, 35, Priority.NORMAL, 35, id="open-caps-normal"),
    ],
)
def test_ceiling_is_the_priority_ceiling_never_above_open(
    ceilings: dict[Priority, int], open_depth: int, priority: Priority, expected: int
) -> None:
    pressure = Backpressure(warn_depth=30, overload_depth=40, open_depth=open_depth,
                            ceilings=ceilings)  # fmt: skip

    assert pressure.ceiling(priority) == expected


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        (0, None),
        (29, None),
        (30, "queue depth 30 is at or above the warning level 30"),
        (49, "queue depth 49 is at or above the warning level 30"),
    ],
)
def test_warning_names_depth_and_level_from_the_warn_depth(
    depth: int, expected: str | None
) -> None:
    assert PRESSURE.warning(depth) == expected


@pytest.mark.parametrize(
    ("depth", "drain_per_s", "expected"),
    [
        pytest.param(30, None, 1, id="low-refused-below-overload-waits-1"),
        pytest.param(39, None, 1, id="last-depth-below-overload-waits-1"),
        pytest.param(40, None, 5, id="overload-5-per-excess-job"),
        pytest.param(44, None, 25, id="overload-grows-by-5"),
        pytest.param(49, None, 50, id="just-below-open"),
        pytest.param(50, None, 30, id="open-is-30"),
        pytest.param(500, None, 30, id="far-past-open-is-30"),
        pytest.param(40, 0.0, 5, id="zero-drain-falls-back"),
        pytest.param(40, -1.0, 5, id="negative-drain-falls-back"),
        pytest.param(30, 0.5, 2, id="below-overload-drains-one-job"),
        pytest.param(44, 0.4, 13, id="excess-over-drain-rounded-up"),
        pytest.param(49, 100.0, 1, id="fast-drain-at-least-1"),
        pytest.param(45, 0.01, 60, id="slow-drain-at-most-60"),
        pytest.param(50, 0.01, 30, id="open-ignores-drain"),
    ],
)
def test_retry_after_is_1_to_60_from_excess_or_drain_and_30_when_open(
    depth: int, drain_per_s: float | None, expected: int
) -> None:
    assert PRESSURE.retry_after_s(depth, drain_per_s=drain_per_s) == expected
