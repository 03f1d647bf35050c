"""Pure admission and retry decisions: numbers in, decisions out, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from smartqueue.config import Settings
from smartqueue.models import DeadReason, Priority


@dataclass(frozen=True)
class Backpressure:
    """The thresholds that decide whether a submission is accepted."""

    warn_depth: int
    overload_depth: int
    open_depth: int
    ceilings: dict[Priority, int]
    max_depth: int = 10_000  # over all routes, guarding Redis memory

    @classmethod
    def from_settings(cls, settings: Settings) -> Backpressure:
        """Thresholds from the service settings."""
        return cls(
            warn_depth=settings.queue_warn_depth,
            overload_depth=settings.queue_overload_depth,
            open_depth=settings.queue_open_depth,
            ceilings={
                Priority.HIGH: settings.ceiling_high,
                Priority.NORMAL: settings.ceiling_normal,
                Priority.LOW: settings.ceiling_low,
            },
            max_depth=settings.queue_max_depth,
        )

    def ceiling(self, priority: Priority) -> int:
        """Depth from which a job of `priority` is refused (never above the open depth)."""
        return min(self.ceilings[priority], self.open_depth)

    def warning(self, depth: int) -> str | None:
        """A warning for an accepted job once the queue is filling up."""
        if depth < self.warn_depth:
            return None
        return f"queue depth {depth} is at or above the warning level {self.warn_depth}"

    def retry_after_s(self, depth: int, *, drain_per_s: float | None = None) -> int:
        """Seconds a refused client should wait: integer, 1..60 (30 once the queue is open)."""
        if depth >= self.open_depth:
            return 30
        excess = depth - self.overload_depth + 1
        if drain_per_s is not None and drain_per_s > 0:
            return _clamp(math.ceil(max(excess, 1) / drain_per_s), 1, 60)
        return _clamp(excess * 5, 1, 60)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


class Failure(StrEnum):
    """How a GPU call went wrong."""

    CONNECT = "connect"  # refused or connect timeout: nothing was sent
    HTTP = "http"  # the GPU answered with an error status
    TIMEOUT = "timeout"  # the job's deadline passed mid-call
    PROTOCOL = "protocol"  # broken connection, invalid JSON, stream cut short
    TOO_LARGE = "too_large"  # the answer is over the result cap: never truncated, never retried
    INVALID_REQUEST = "invalid_request"  # the request could not be built or sent: the job's fault


RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_retryable(failure: Failure, status: int | None) -> bool:
    """Everything but a 4xx other than 408/409/429 (and an oversized answer) may be tried again."""
    if failure in (Failure.TOO_LARGE, Failure.INVALID_REQUEST):
        return False
    if failure is not Failure.HTTP or status is None:
        return True
    return status in RETRYABLE_STATUSES or status >= 500


def counts_against_gpu(failure: Failure, status: int | None) -> bool:
    """Failures that say the GPU is unwell (for its breaker); 429, client errors and requests
    that never left (INVALID_REQUEST) don't."""
    if failure in (Failure.TOO_LARGE, Failure.INVALID_REQUEST):
        return False
    if failure is not Failure.HTTP or status is None:
        return True
    return status >= 500 or status == 408


def counts_as_attempt(failure: Failure) -> bool:
    """A call that sent nothing (refused connection, unbuildable request) uses up no try."""
    return failure not in (Failure.CONNECT, Failure.INVALID_REQUEST)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries: how many, and the exponential backoff between them."""

    max_retries: int = 3
    base_s: float = 1.0
    cap_s: float = 60.0

    def backoff_s(self, attempt: int, *, retry_after_s: float | None, jitter: float) -> float:
        """Delay before try `attempt + 1`: full-jitter exponential, never before Retry-After.

        `jitter` is a number in [0, 1) supplied by the caller (random in production).
        """
        ceiling = min(self.cap_s, self.base_s * 2.0 ** max(attempt - 1, 0))
        delay = ceiling * (0.5 + jitter / 2)
        return max(delay, retry_after_s or 0.0)

    def exhausted(self, attempts: int) -> bool:
        """True once the job has used its first try and every retry."""
        return attempts > self.max_retries


@dataclass(frozen=True)
class DeadLetter:
    """Verdict: the job is dead for `reason`, after `attempts` tries."""

    reason: DeadReason
    attempts: int


@dataclass(frozen=True)
class RetryLater:
    """Verdict: try the job again in `delay_s`; it has used `attempts` tries."""

    delay_s: float
    attempts: int


FailureVerdict = DeadLetter | RetryLater


def decide_failure(
    failure: Failure,
    status: int | None,
    *,
    attempts: int,
    waited_s: float,
    max_wait_s: float,
    retry: RetryPolicy,
    retry_after_s: float | None,
    jitter: float,
) -> FailureVerdict:
    """What becomes of a job whose GPU call failed, after `attempts` earlier tries.

    `waited_s` is the time since submission; `jitter` is in [0, 1) (random in production).
    """
    attempts += 1 if counts_as_attempt(failure) else 0
    if failure is Failure.INVALID_REQUEST:  # retrying cannot help: the same bytes fail again
        return DeadLetter(DeadReason.INVALID_REQUEST, attempts)
    # Only a call that sent nothing can expire: the job never reached a GPU.
    if failure is Failure.CONNECT and waited_s > max_wait_s:
        return DeadLetter(DeadReason.EXPIRED, attempts)
    if failure is Failure.TOO_LARGE:
        return DeadLetter(DeadReason.RESULT_TOO_LARGE, attempts)
    if not is_retryable(failure, status):
        return DeadLetter(DeadReason.NON_RETRYABLE, attempts)
    if retry.exhausted(attempts):
        return DeadLetter(DeadReason.RETRIES_EXHAUSTED, attempts)
    delay_s = retry.backoff_s(attempts, retry_after_s=retry_after_s, jitter=jitter)
    return RetryLater(delay_s, attempts)


@dataclass
class DrainMeter:
    """How fast jobs leave the queue, from samples of a cumulative dispatch count."""

    window_s: float = 60.0
    min_span_s: float = 1.0
    samples: list[tuple[float, int]] = field(default_factory=list)

    def wants_sample(self, now: float) -> bool:
        """True when the last sample is old enough to be worth a new one."""
        return not self.samples or now - self.samples[-1][0] >= self.min_span_s

    def add(self, now: float, dispatched_total: int) -> None:
        """Record the cumulative count at `now`; samples older than the window are dropped."""
        self.samples.append((now, dispatched_total))
        self.samples = [(t, n) for t, n in self.samples if now - t <= self.window_s]

    def rate_per_s(self) -> float | None:
        """Jobs dispatched per second over the window; None until it can be measured."""
        if len(self.samples) < 2:
            return None
        (first_t, first_n), (last_t, last_n) = self.samples[0], self.samples[-1]
        span_s = last_t - first_t
        if span_s < self.min_span_s or last_n <= first_n:
            return None
        return (last_n - first_n) / span_s
