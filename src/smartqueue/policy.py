"""Pure admission and retry decisions: numbers in, decisions out, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

from smartqueue.config import Settings
from smartqueue.models import Priority


@dataclass(frozen=True)
class Backpressure:
    """The thresholds that decide whether a submission is accepted."""

    warn_depth: int
    overload_depth: int
    open_depth: int
    ceilings: dict[Priority, int]

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
