"""The queue's vocabulary: a job submitted, admitted, waiting in a stream, taken for a GPU.

Pure values shared by the API, the engine and the store; nothing here talks to Redis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from smartqueue.models import ErrorInfo, JobStatus, Priority

DEFAULT_PATH = "/v1/chat/completions"
DEFAULT_CONTENT_TYPE = "application/json"  # what a GPU call sends when the job kept none


def stored_headers(headers: dict[str, str]) -> str:
    """A job's kept headers as its stream entry holds them: '' (field left out) when they are
    the defaults, else compact JSON; a `content-type` equal to the GPU call's default is left out.
    """
    kept = {name: value for name, value in headers.items()
            if (name, value) != ("content-type", DEFAULT_CONTENT_TYPE)}  # fmt: skip
    return json.dumps(kept, separators=(",", ":")) if kept else ""


@dataclass(frozen=True)
class NewJob:
    """A submission about to be stored."""

    job_id: str
    route: str
    priority: Priority
    payload: bytes
    headers: dict[str, str]
    created_at: float
    idempotency_digest: str | None = None  # the owner's Idempotency-Key, hashed with the owner
    path: str = DEFAULT_PATH
    owner: str = ""  # smartqueue.owners: an HMAC of the caller's credential, never the credential
    request_digest: str = ""  # route, path and body hashed: a reused key must bring the same


@dataclass(frozen=True)
class Admission:
    """Outcome of an enqueue: accepted (maybe as a duplicate) or refused at `depth`."""

    accepted: bool
    depth: int  # jobs waiting when the submission arrived
    job_id: str | None = None
    duplicate: bool = False
    position: int | None = None
    everywhere_full: bool = False  # refused by the ceiling over all routes, not the route's
    key_reused: bool = False  # the Idempotency-Key was first used for another request

    @property
    def queue_depth(self) -> int:
        """Jobs waiting once this submission is in."""
        return self.depth + 1 if self.accepted and not self.duplicate else self.depth


@dataclass(frozen=True)
class StreamEntry:
    """A job as read from a stream (or the DLQ): what is needed to run it again."""

    entry_id: str
    job_id: str
    payload: bytes
    headers: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)
    path: str = DEFAULT_PATH

    def job_fields(self, job_id: str | None = None) -> list[str | bytes]:
        """The fields of a stream entry that runs this job (as `job_id` when given)."""
        fields: list[str | bytes] = ["job_id", job_id or self.job_id, "payload", self.payload]
        if headers := stored_headers(self.headers):
            fields += ["headers", headers]
        if self.path != DEFAULT_PATH:
            fields += ["path", self.path]
        return fields


@dataclass(frozen=True)
class TakenJob:
    """A job a consumer took from a stream, with a slot on `gpu`."""

    entry: StreamEntry
    stream: str
    priority: Priority
    route: str
    gpu: str
    deliveries: int
    attempts: int
    created_at: float

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.entry.job_id


@dataclass(frozen=True)
class ExpiredJob:
    """A job that waited for dispatch past its deadline and went dead."""

    job_id: str
    route: str
    priority: Priority


@dataclass(frozen=True)
class Lease:
    """How long a consumer's hold on a job and its slot lasts without renewal."""

    lease_ms: int
    aging_ms: int


@dataclass(frozen=True)
class StoredResult:
    """The GPU's answer exactly as stored."""

    status: int
    content_type: str
    body: bytes


@dataclass
class StoredJob:
    """A job's record as the store holds it (the API turns it into its JobRecord view)."""

    job_id: str
    status: JobStatus
    route: str
    priority: Priority
    attempts: int
    created_at: float
    gpu: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    result: StoredResult | None = None
    reason: str | None = None
    error: ErrorInfo | None = None
    retry_of: str | None = None
    retried_as: str | None = None
    entry: str | None = None  # its stream entry while queued
    seq: int | None = None  # its stream's entered counter when it entered (for its position)
    owner: str = ""  # who submitted it (smartqueue.owners); "" for records older than owners
