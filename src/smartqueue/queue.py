"""The queue's vocabulary: a job submitted, admitted, waiting in a stream, taken for a GPU.

Pure values shared by the API, the engine and the store; nothing here talks to Redis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum

from smartqueue.models import ErrorInfo, JobStatus, Priority

DEFAULT_PATH = "/v1/chat/completions"
SIZE_FIELDS = ("in", "out")  # entry fields: estimated prompt tokens, the request's max_tokens


def size_fields(prompt_tokens: int, max_tokens: int | None) -> list[str]:
    """A waiting entry's size fields (only those known), for the planner."""
    fields = ["in", str(prompt_tokens)] if prompt_tokens > 0 else []
    return fields + (["out", str(max_tokens)] if max_tokens else [])


DEFAULT_CONTENT_TYPE = "application/json"  # what a GPU call sends when the job kept none
DEFAULT_ACCEPT = "*/*"  # likewise (and what a request without Accept means, RFC 9110)


def stored_headers(headers: dict[str, str]) -> str:
    """A job's kept headers as its stream entry holds them: '' (field left out) when they are
    the defaults, else compact JSON; a `content-type` or `accept` equal to what the GPU call
    sends by default is left out (most clients send both, and each entry would carry them).
    """
    defaults = {("content-type", DEFAULT_CONTENT_TYPE), ("accept", DEFAULT_ACCEPT)}
    kept = {name: value for name, value in headers.items() if (name, value) not in defaults}
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
    prompt_tokens: int = 0  # estimated from the payload, for the planner; 0 when unknown
    max_tokens: int | None = None  # the request's own output limit; None when it set none


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
        for name in SIZE_FIELDS:
            if self.fields.get(name):
                fields += [name, self.fields[name]]
        return fields


@dataclass(frozen=True)
class WaitingEntry:
    """A waiting job as the planner sees it: where it waits, since when, and its size."""

    stream: str
    priority: Priority
    route: str
    entry_id: str
    job_id: str
    prompt_tokens: int = 0  # estimated from the payload; 0 when unknown
    max_tokens: int | None = None  # the request's own limit; None when it set none

    @property
    def enqueued_at(self) -> float:
        """When it entered its stream (epoch seconds, from the entry id)."""
        return int(self.entry_id.split("-", 1)[0]) / 1000


class TakeRefused(Enum):
    """Why a take got no job: the GPU is full (or its breaker closed), the entry is gone, or
    (a batch entry) interactive work of its route arrived since the caller looked."""

    GPU_FULL = "gpu_full"
    GONE = "gone"
    OUTRANKED = "outranked"


@dataclass(frozen=True)
class TakenJob:
    """A job a consumer took for `gpu`, with a slot on it; `entry` is its running entry."""

    entry: StreamEntry
    stream: str  # the running stream
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
    entry: str | None = None  # its waiting entry while queued, its running entry once taken
    seq: int | None = None  # its stream's entered counter when it entered (for its position)
    owner: str = ""  # who submitted it (smartqueue.owners); "" for records older than owners
