"""The job schema and the bodies of the HTTP API (they document /docs)."""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Priority(StrEnum):
    """Dispatch priority, from the `X-Syslog-Priority` header."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"
    BATCH = "batch"  # Batch API requests only: below every interactive priority, never aged


PRIORITY_ORDER: tuple[Priority, ...] = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
"""The interactive priorities, the ones clients may name and backpressure counts."""

DISPATCH_ORDER: tuple[Priority, ...] = (*PRIORITY_ORDER, Priority.BATCH)
"""Every stream class in the order TAKE ranks them: batch work fills only idle capacity."""


class JobStatus(StrEnum):
    """Where a job is in its lifecycle."""

    QUEUED = "queued"
    PROCESSING = "processing"
    RETRYING = "retrying"
    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True once the job can never change again."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.DEAD, JobStatus.CANCELLED})

# The lifecycle: status never moves backwards and a terminal job never changes.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING, JobStatus.DEAD, JobStatus.CANCELLED}),
    JobStatus.PROCESSING: frozenset(
        {JobStatus.COMPLETED, JobStatus.RETRYING, JobStatus.DEAD, JobStatus.CANCELLED}
    ),
    JobStatus.RETRYING: frozenset({JobStatus.QUEUED, JobStatus.DEAD, JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.DEAD: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """Statuses from which a job may move to `target`."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


class DeadReason(StrEnum):
    """Why a job ended dead."""

    RETRIES_EXHAUSTED = "retries_exhausted"
    NON_RETRYABLE = "non_retryable"
    POISON = "poison"
    EXPIRED = "expired"
    RESULT_TOO_LARGE = "result_too_large"
    INVALID_REQUEST = "invalid_request"  # could not be built or sent: the job's fault, not a GPU's


def new_job_id() -> str:
    """A random, unguessable job id: 128 bits, URL-safe, never a stream id."""
    return secrets.token_urlsafe(16)


class ErrorInfo(BaseModel):
    """An error as stored with a job and sent in the API's error body."""

    message: str
    type: str
    code: str | None = None
    gpu_status: int | None = Field(default=None, description="HTTP status the GPU answered")


class JobRecord(BaseModel):
    """A job as `GET /status/{job_id}` shows it."""

    model_config = ConfigDict(use_enum_values=False)

    job_id: str
    status: JobStatus
    route: str
    priority: Priority
    attempts: int = Field(description="GPU calls made so far")
    gpu: str | None = Field(default=None, description="GPU of the latest attempt")
    created_at: float = Field(description="Unix time the job was accepted")
    started_at: float | None = None
    completed_at: float | None = None
    position: int | None = Field(
        default=None, description="Jobs ahead of this one for its route (queued only)"
    )
    eta_s: float | None = Field(default=None, description="Estimated wait (queued only)")
    result_status: int | None = Field(default=None, description="HTTP status the GPU answered")
    result: Any = Field(default=None, description="The GPU's full answer (completed only)")
    reason: str | None = Field(default=None, description="Why the job is dead or cancelled")
    error: ErrorInfo | None = None
    retry_of: str | None = Field(default=None, description="Dead job this one re-runs")
    retried_as: str | None = Field(default=None, description="Job that re-runs this dead one")


class EnqueueResponse(BaseModel):
    """Answer to an accepted submission (`202 Accepted`)."""

    job_id: str
    status: JobStatus
    queue_depth: int = Field(description="Jobs waiting for dispatch, this one included")
    position: int | None = Field(description="Jobs ahead of this one for its route")
    warning: str | None = Field(default=None, description="Set when the queue is filling up")
    duplicate: bool = Field(default=False, description="Idempotency-Key seen before")


class DepthView(BaseModel):
    """Jobs waiting for dispatch, per priority, and per route and priority."""

    high: int
    normal: int
    low: int
    total: int
    by_route: dict[str, dict[Priority, int]] = Field(
        default_factory=dict, description="Admission counts each route on its own"
    )


class Thresholds(BaseModel):
    """Backpressure settings in force."""

    warn: int
    overloaded: int
    open: int
    ceilings: dict[Priority, int]


class DlqEntry(BaseModel):
    """One dead-letter entry."""

    id: str = Field(description="Dead-letter entry id (use it to retry or discard)")
    job_id: str | None = Field(description="The dead job (shown to admins only)")
    route: str
    priority: Priority
    reason: str
    attempts: int
    last_error: ErrorInfo | None
    dead_at: float


class DlqList(BaseModel):
    """A page of the dead-letter queue, oldest first."""

    total: int
    entries: list[DlqEntry]


class DlqRetryResponse(BaseModel):
    """The new job that re-runs a dead one."""

    job_id: str
    retry_of: str
    status: JobStatus


class DlqBulkRetry(BaseModel):
    """What a filtered retry did: the new jobs, and entries left alone (route gone, or taken)."""

    retried: list[DlqRetryResponse]
    skipped: int


class DlqBulkDiscard(BaseModel):
    """How many entries a filtered discard removed."""

    discarded: int


class DrainStatus(BaseModel):
    """A replica's drain: whether it takes new jobs, and how many of its jobs still run."""

    replica: str
    draining: bool
    running: int = Field(description="jobs this replica's consumers are running now")
    empty: bool = Field(description="draining and nothing running: safe to stop")


class ConsumerInfo(BaseModel):
    """A live consumer task of some replica."""

    id: str
    replica: str
    state: str
    current_job: str | None = Field(description="The job it runs (shown to admins only)")
    last_heartbeat: float
    jobs_done: int


class ConsumerList(BaseModel):
    """Live consumers across all replicas."""

    consumers: list[ConsumerInfo]


class BreakerView(BaseModel):
    """A GPU's circuit breaker as every replica sees it."""

    state: str
    failures: int = 0
    reason: str | None = None
    opened_at: float | None = None


class SpeedView(BaseModel):
    """A GPU's speed as the planner predicts with it, learned from completed jobs."""

    base_s: float = Field(description="Time to first token of an empty prompt")
    prefill_s_per_token: float = Field(description="Added time to first token per prompt token")
    decode_s_per_token: float = Field(description="Time per generated token")
    samples: float = Field(description="Decayed weight of the completed jobs behind it")
    learned: bool = Field(description="False while too few jobs completed: the prior is used")


class GpuView(BaseModel):
    """A GPU of the fleet with what smartqueue knows of it."""

    name: str
    url: str
    sidecar_url: str
    engine: str
    model: str
    slots: int
    vram_total_mb: int
    routes: list[str] = Field(description="Routes that may use this GPU")
    slots_in_use: int = 0
    breaker: BreakerView = Field(default_factory=lambda: BreakerView(state="closed"))
    health: dict[str, Any] | None = Field(
        default=None, description="Latest probe (sidecar and engine metrics, score, age)"
    )
    speed: SpeedView | None = Field(
        default=None, description="Learned speed (docs/scheduling.md), shared by the replicas"
    )


class GpuList(BaseModel):
    """The fleet."""

    gpus: list[GpuView]


class JobCounts(BaseModel):
    """Jobs that ended, counted by this replica since it started (not cluster-wide)."""

    completed: int
    cancelled: int


class QueueOverview(BaseModel):
    """`GET /status`: the whole queue at a glance."""

    depth: DepthView
    in_flight: int
    delayed: int = Field(description="Jobs waiting out a retry backoff")
    dlq_depth: int
    thresholds: Thresholds
    consumers: list[ConsumerInfo]
    gpus: list[GpuView]
    jobs: JobCounts | None = Field(
        default=None, description="Ended jobs counted by the replica that answers (per replica)"
    )


class HealthView(BaseModel):
    """Readiness: Redis answers."""

    status: str
    redis: str


class ErrorDetail(BaseModel):
    """The inside of every error body."""

    message: str
    type: str
    code: str
    param: str | None = None


class ErrorBody(BaseModel):
    """Every error answer: `{"error": {"message", "type", "code"}}`."""

    error: ErrorDetail
