"""Prometheus metrics (`smartqueue_*`), one registry per app so tests stay independent."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Every metric smartqueue exports; labels never carry job ids."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.submissions = Counter(
            "smartqueue_submissions",
            "Submissions by priority and outcome (accepted, duplicate, refused)",
            ["priority", "outcome"],
            registry=self.registry,
        )
        self.backpressure_warnings = Counter(
            "smartqueue_backpressure_warnings",
            "Submissions accepted while the queue was above its warning depth",
            registry=self.registry,
        )
        self.depth = Gauge(
            "smartqueue_queue_depth",
            "Jobs waiting for dispatch, per priority (as of the last overview or dispatch)",
            ["priority"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "smartqueue_job_outcomes",
            "Jobs that ended, by status and reason",
            ["status", "reason"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "smartqueue_queue_wait_seconds",
            "Time from acceptance to dispatch",
            ["priority"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self.dispatch = Histogram(
            "smartqueue_dispatch_seconds",
            "Duration of one GPU call",
            ["gpu", "outcome"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "smartqueue_breaker_open",
            "1 when a GPU's circuit breaker is open or half-open",
            ["gpu"],
            registry=self.registry,
        )
        self.gpu_score = Gauge(
            "smartqueue_gpu_load_score",
            "Latest load score per GPU (lower is less loaded)",
            ["gpu"],
            registry=self.registry,
        )

    def outcome_count(self, status: str) -> int:
        """Jobs that ended with `status` on this replica since it started (any reason)."""
        return int(sum(
            sample.value
            for family in self.outcomes.collect()
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels["status"] == status
        ))  # fmt: skip

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
