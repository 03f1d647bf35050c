"""A pure circuit-breaker model: state changes are values, `now` is passed in.

closed --(threshold consecutive failures)--> open --(recovery time)--> half-open
half-open: exactly one probe job; success -> closed, failure or probe timeout -> open.
The state is shared by every replica through the store (compare-and-set on a version).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class BreakerState(StrEnum):
    """Where a GPU's breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Gate(StrEnum):
    """What the breaker lets a dispatcher do now."""

    ALLOW = "allow"
    PROBE = "probe"  # may send exactly one job, after winning the half-open claim
    DENY = "deny"


@dataclass(frozen=True)
class BreakerPolicy:
    """Thresholds: failures to open, time before a probe, how long a probe may take."""

    failure_threshold: int = 3
    recovery_s: float = 30.0
    probe_timeout_s: float = 300.0


@dataclass(frozen=True)
class Breaker:
    """A GPU's breaker."""

    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float | None = None
    probe_deadline: float | None = None
    reason: str | None = None


def gate(breaker: Breaker, *, now: float, policy: BreakerPolicy) -> Gate:
    """Whether a job may go to the GPU now."""
    if breaker.state is BreakerState.CLOSED:
        return Gate.ALLOW
    if breaker.state is BreakerState.OPEN:
        recovered = breaker.opened_at is None or now >= breaker.opened_at + policy.recovery_s
        return Gate.PROBE if recovered else Gate.DENY
    probe_lost = breaker.probe_deadline is None or now >= breaker.probe_deadline
    return Gate.PROBE if probe_lost else Gate.DENY


def start_probe(breaker: Breaker, *, now: float, policy: BreakerPolicy) -> Breaker:
    """Half-open with one probe in flight until `now + probe_timeout_s`."""
    return replace(
        breaker, state=BreakerState.HALF_OPEN, probe_deadline=now + policy.probe_timeout_s
    )


def on_success(breaker: Breaker) -> Breaker:
    """A GPU call succeeded: closed, failures forgotten."""
    del breaker
    return Breaker()


def on_failure(breaker: Breaker, *, now: float, reason: str, policy: BreakerPolicy) -> Breaker:
    """A GPU call failed: count it; open at the threshold or when a probe failed."""
    failures = breaker.failures + 1
    if breaker.state is BreakerState.HALF_OPEN or failures >= policy.failure_threshold:
        return Breaker(BreakerState.OPEN, failures, opened_at=now, reason=reason)
    return replace(breaker, failures=failures, reason=reason)
