"""Prometheus metrics (`smartqueue_*`), one registry per app so tests stay independent.

Two kinds live on the registry: this replica's own counters and histograms (submissions,
outcomes, HTTP requests, waits), and the cluster-wide numbers that every replica reads from
Redis at scrape time (`ClusterReading`, exported by `ClusterCollector`), so a scrape of any
replica is true without anyone having called another endpoint first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

BREAKER_STATES = ("closed", "open", "half_open")
WAIT_BUCKETS_S = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
CALL_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
HTTP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class GpuReading:
    """One GPU as every replica sees it at scrape time (signals from this replica's probes)."""

    name: str
    slots: int
    slots_in_use: int
    jobs_in_flight: int
    breaker_state: str
    load_score: float | None = None
    signals: dict[str, float] = field(default_factory=dict)
    signal_age_s: float | None = None


@dataclass(frozen=True)
class ClusterReading:
    """The cluster-wide numbers, read from Redis for one scrape."""

    depths: dict[str, dict[str, int]]  # route -> priority -> jobs waiting
    dlq_depth: int
    delayed_retries: int
    consumers_live: int
    gpus: list[GpuReading]


class ClusterCollector(Collector):
    """Exports the reading handed to it for the scrape under way (nothing when there is none)."""

    def __init__(self) -> None:
        self.reading: ClusterReading | None = None

    def collect(self) -> Iterator[Metric]:
        """The cluster gauges of the current reading."""
        reading = self.reading
        if reading is None:
            return
        yield from _queue_families(reading)
        yield from _gpu_families(reading.gpus)


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


def _queue_families(reading: ClusterReading) -> Iterator[Metric]:
    depth = _gauge("smartqueue_queue_depth", "Jobs waiting for dispatch, per route and priority",
                   ["route", "priority"])  # fmt: skip
    for route, by_priority in reading.depths.items():
        for priority, jobs in by_priority.items():
            depth.add_metric([route, priority], jobs)
    yield depth
    yield GaugeMetricFamily("smartqueue_dlq_depth", "Entries in the dead-letter queue",
                            value=reading.dlq_depth)  # fmt: skip
    yield GaugeMetricFamily("smartqueue_delayed_retries", "Jobs waiting out a retry backoff",
                            value=reading.delayed_retries)  # fmt: skip
    yield GaugeMetricFamily("smartqueue_consumers_live",
                            "Consumers of every replica with a recent heartbeat",
                            value=reading.consumers_live)  # fmt: skip


def _gpu_families(gpus: list[GpuReading]) -> Iterator[Metric]:
    slots = _gauge("smartqueue_gpu_slots", "Concurrent slots of a GPU (fleet file)", ["gpu"])
    in_use = _gauge("smartqueue_gpu_slots_in_use",
                    "Slots held with a live lease, across replicas", ["gpu"])  # fmt: skip
    in_flight = _gauge("smartqueue_jobs_in_flight",
                       "Jobs sent to a GPU and not yet recorded (lapsed leases included)",
                       ["gpu"])  # fmt: skip
    breaker = _gauge("smartqueue_breaker_state", "1 for the current state of a GPU's breaker",
                     ["gpu", "state"])  # fmt: skip
    score = _gauge("smartqueue_gpu_load_score", "Load score (lower is less loaded)", ["gpu"])
    signal = _gauge("smartqueue_gpu_signal", "Each load signal of a GPU's latest probe",
                    ["gpu", "signal"])  # fmt: skip
    age = _gauge("smartqueue_gpu_signal_age_seconds", "Age of a GPU's latest probe", ["gpu"])
    for gpu in gpus:
        slots.add_metric([gpu.name], gpu.slots)
        in_use.add_metric([gpu.name], gpu.slots_in_use)
        in_flight.add_metric([gpu.name], gpu.jobs_in_flight)
        for state in BREAKER_STATES:
            breaker.add_metric([gpu.name, state], float(state == gpu.breaker_state))
        if gpu.load_score is not None:
            score.add_metric([gpu.name], gpu.load_score)
        for name, value in gpu.signals.items():
            signal.add_metric([gpu.name, name], value)
        if gpu.signal_age_s is not None:
            age.add_metric([gpu.name], gpu.signal_age_s)
    yield from (slots, in_use, in_flight, breaker, score, signal, age)


class Metrics:
    """Every metric smartqueue exports; labels never carry job ids."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.cluster = ClusterCollector()
        self.registry.register(self.cluster)
        self._local_counters()
        self._local_histograms()
        self.draining = Gauge("smartqueue_replica_draining",
                              "1 while this replica is drained (takes no new job)",
                              registry=self.registry)  # fmt: skip

    def _local_counters(self) -> None:
        self.submissions = Counter(
            "smartqueue_submissions",
            "Submissions by route, priority and outcome (accepted, duplicate, refused)",
            ["route", "priority", "outcome"],
            registry=self.registry,
        )
        self.backpressure_warnings = Counter(
            "smartqueue_backpressure_warnings",
            "Submissions accepted while the queue was above its warning depth",
            registry=self.registry,
        )
        self.outcomes = Counter("smartqueue_job_outcomes", "Jobs that ended, by status and reason",
                                ["status", "reason"], registry=self.registry)  # fmt: skip
        self.follow_on_takes = Counter(
            "smartqueue_follow_on_takes",
            "Jobs taken in the slot of an answered job from the last plan, without planning again",
            registry=self.registry,
        )
        self.queue_reads = Counter(
            "smartqueue_queue_reads",
            "Reads of the waiting queue for a plan (PEEK) by this replica's consumers",
            registry=self.registry,
        )
        self.dlq_trimmed = Counter("smartqueue_dlq_trimmed",
                                   "Dead-letter entries removed for being past their retention",
                                   registry=self.registry)  # fmt: skip
        self.http_requests = Counter("smartqueue_http_requests",
                                     "HTTP requests by method, route template and status",
                                     ["method", "route", "status"],
                                     registry=self.registry)  # fmt: skip

    def _local_histograms(self) -> None:
        self.queue_wait = Histogram("smartqueue_queue_wait_seconds",
                                    "Time from acceptance to dispatch", ["route", "priority"],
                                    buckets=WAIT_BUCKETS_S, registry=self.registry)  # fmt: skip
        self.job_duration = Histogram("smartqueue_job_duration_seconds",
                                      "Time from acceptance to completion (end to end)",
                                      ["route", "priority"], buckets=WAIT_BUCKETS_S,
                                      registry=self.registry)  # fmt: skip
        self.dispatch = Histogram("smartqueue_dispatch_seconds", "Duration of one GPU call",
                                  ["gpu", "outcome"], buckets=CALL_BUCKETS_S,
                                  registry=self.registry)  # fmt: skip
        self.http_duration = Histogram("smartqueue_http_request_duration_seconds",
                                       "HTTP request latency by method and route template",
                                       ["method", "route"], buckets=HTTP_BUCKETS_S,
                                       registry=self.registry)  # fmt: skip

    def outcome_count(self, status: str) -> int:
        """Jobs that ended with `status` on this replica since it started (any reason)."""
        return int(sum(
            sample.value
            for family in self.outcomes.collect()
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels["status"] == status
        ))  # fmt: skip

    def render(self, reading: ClusterReading | None = None) -> bytes:
        """The Prometheus text exposition: this replica's metrics and the cluster `reading`."""
        self.cluster.reading = reading  # no await between this and the rendering below
        try:
            return generate_latest(self.registry)
        finally:
            self.cluster.reading = None
