"""Turning an HTTP request into a job: body within its limit, headers on the allowlist."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from smartqueue.config import FleetConfig, Settings
from smartqueue.errors import BadRequest, HeadersTooLarge, InvalidInput, PayloadTooLarge, QueueFull
from smartqueue.logs import traced
from smartqueue.metrics import Metrics
from smartqueue.models import PRIORITY_ORDER, EnqueueResponse, JobStatus, Priority, new_job_id
from smartqueue.openai_format import parse_json_object
from smartqueue.owners import ANONYMOUS, Caller, request_digest, scoped_key_digest
from smartqueue.planner import job_size
from smartqueue.policy import Backpressure, DrainMeter
from smartqueue.queue import DEFAULT_PATH, Admission, NewJob
from smartqueue.store import Store

KEPT_HEADERS = frozenset({"content-type", "accept", "x-request-id", "traceparent", "tracestate"})
KEPT_PREFIX = "x-syslog-"
MAX_IDEMPOTENCY_KEY = 255
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True)
class HeaderLimits:
    """Bounds on the headers kept with a job (settings max_header_bytes, max_kept_headers_bytes)."""

    per_header_bytes: int = 8_192
    total_bytes: int = 16_384

    @classmethod
    def from_settings(cls, settings: Settings) -> HeaderLimits:
        """The limits in force."""
        return cls(settings.max_header_bytes, settings.max_kept_headers_bytes)


log = logging.getLogger(__name__)


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Only the allow-listed headers travel with a job; secrets never reach Redis."""
    return {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() in KEPT_HEADERS or name.lower().startswith(KEPT_PREFIX)
    }


def check_headers(kept: Mapping[str, str], limits: HeaderLimits) -> None:
    """Kept headers must be sendable to a GPU: printable ASCII, each and all within limits."""
    total = 0
    for name, value in kept.items():
        if not PRINTABLE_ASCII.fullmatch(value):
            raise BadRequest(f"header {name} must be printable ASCII", code="invalid_header",
                             param=name)  # fmt: skip
        size = len(name) + len(value)
        if size > limits.per_header_bytes:
            raise HeadersTooLarge(f"header {name} is over the {limits.per_header_bytes} byte "
                                  "limit", param=name)  # fmt: skip
        total += size
    if total > limits.total_bytes:
        raise HeadersTooLarge(
            f"the headers kept with the job are over the {limits.total_bytes} byte limit together"
        )


async def read_body(request: Request, *, limit_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it grows past `limit_bytes`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit_bytes:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the {limit_bytes} limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise PayloadTooLarge(f"request body is over the {limit_bytes} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def check_payload(body: bytes, content_type: str | None) -> dict[str, Any] | None:
    """Refuse an empty body, and a JSON body that is not one JSON object; the object, if any."""
    if not body.strip():
        raise InvalidInput("request body is empty: send the job (normally OpenAI JSON)")
    if not content_type or "json" not in content_type.lower():
        return None
    try:
        document = json.loads(body)
    except ValueError as error:
        raise BadRequest(f"request body is not valid JSON: {error}", code="invalid_json") from None
    except RecursionError:
        raise BadRequest("request body is JSON nested too deep to parse",
                         code="invalid_json") from None  # fmt: skip
    if not isinstance(document, dict):
        raise BadRequest("a JSON request body must be a JSON object", code="invalid_json")
    return document


def resolve_route(fleet: FleetConfig, header_value: str | None) -> str:
    """The route named by X-Syslog-Model (`default` when absent); 422 when unknown."""
    route = header_value or "default"
    if route not in fleet.routes:
        known = ", ".join(fleet.route_names)
        raise InvalidInput(
            f"X-Syslog-Model {route!r} is not a known route (known: {known})",
            code="unknown_route",
            param="X-Syslog-Model",
        )
    return route


def parse_priority(header_value: str | None) -> Priority:
    """The priority named by X-Syslog-Priority (`normal` when absent); 422 when unknown."""
    value = (header_value or Priority.NORMAL.value).strip().lower()
    interactive = {priority.value: priority for priority in PRIORITY_ORDER}  # never `batch`
    try:
        return interactive[value]
    except KeyError:
        allowed = ", ".join(interactive)
        raise InvalidInput(
            f"X-Syslog-Priority {header_value!r} is not one of: {allowed}",
            code="invalid_priority",
            param="X-Syslog-Priority",
        ) from None


def idempotency_digest(key: str | None, *, owner: str = ANONYMOUS) -> str | None:
    """The stored form of an Idempotency-Key: hashed with its owner, never kept itself."""
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY} characters",
            param="Idempotency-Key",
        )
    return scoped_key_digest(owner, key)


def check_openai_request(body: bytes) -> dict[str, Any]:
    """An OpenAI completion request must be a JSON object; that object."""
    document = parse_json_object(body)
    if document is None:
        raise BadRequest(
            "request body must be a JSON object (an OpenAI request)", code="invalid_json"
        )
    return document


async def build_job(
    request: Request, fleet: FleetConfig, *, limit_bytes: int, openai_path: str | None = None,
    caller: Caller | None = None, header_limits: HeaderLimits | None = None,
) -> NewJob:  # fmt: skip
    """A NewJob from a submission request, or a 4xx naming what is wrong with it.

    `openai_path` is set for the OpenAI front door: the body must then be a JSON object, and
    the job runs on that path of the GPU. The job belongs to `caller` (anonymous if None).
    """
    headers = request.headers
    owner = caller.owner if caller else ANONYMOUS
    route = resolve_route(fleet, headers.get("x-syslog-model"))
    priority = parse_priority(headers.get("x-syslog-priority"))
    digest = idempotency_digest(headers.get("idempotency-key"), owner=owner)
    kept = kept_headers(headers)
    check_headers(kept, header_limits or HeaderLimits())
    body = await read_body(request, limit_bytes=limit_bytes)
    document = check_payload(body, headers.get("content-type"))
    if openai_path is not None:
        document = check_openai_request(body) if document is None else document
    prompt_tokens, max_tokens = job_size(document) if document is not None else (0, None)
    path = openai_path or DEFAULT_PATH
    return NewJob(
        job_id=new_job_id(),
        route=route,
        priority=priority,
        payload=body,
        headers=kept,
        created_at=time.time(),
        idempotency_digest=digest,
        path=path,
        owner=owner,
        request_digest=request_digest(route=route, path=path, body=body),
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
    )


class Admissions:
    """Admission control: the store's atomic enqueue under the backpressure thresholds."""

    def __init__(self, store: Store, backpressure: Backpressure, metrics: Metrics) -> None:
        self.store = store
        self.backpressure = backpressure
        self.metrics = metrics
        self.drain = DrainMeter()

    async def drain_rate(self) -> float | None:
        """Jobs dispatched per second lately (sampled at most once a second, under load)."""
        meter, now = self.drain, time.monotonic()
        if meter.wants_sample(now):
            meter.add(now, await self.store.overview.dispatched_total())
        return meter.rate_per_s()

    async def admit(self, job: NewJob) -> EnqueueResponse:
        """Store the job if backpressure allows (503 + Retry-After otherwise)."""
        pressure = self.backpressure
        ceiling = pressure.ceiling(job.priority)
        admission = await self.store.submissions.enqueue(
            job, ceiling=ceiling, everywhere_ceiling=pressure.max_depth
        )
        self.metrics.submissions.labels(job.route, job.priority.value, _outcome(admission)).inc()
        log_admission(job, admission)
        warning = pressure.warning(admission.depth)
        drain_per_s = await self.drain_rate() if warning or not admission.accepted else None
        if admission.key_reused:
            raise InvalidInput("this Idempotency-Key was used for another request (another "
                               "body or route): use a new key", code="idempotency_key_reused",
                               param="Idempotency-Key")  # fmt: skip
        if admission.everywhere_full:
            raise QueueFull(f"the queue holds its maximum of {pressure.max_depth} jobs over all "
                            "routes; retry later", retry_after_s=30)  # fmt: skip
        if not admission.accepted or admission.job_id is None:
            raise QueueFull(
                f"route {job.route!r} has {admission.depth} jobs waiting, at the "
                f"{job.priority.value}-priority ceiling {ceiling}; retry later",
                retry_after_s=pressure.retry_after_s(admission.depth, drain_per_s=drain_per_s),
            )
        if warning and not admission.duplicate:
            self.metrics.backpressure_warnings.inc()
        return EnqueueResponse(
            job_id=admission.job_id,
            status=await self.current_status(admission),
            queue_depth=admission.queue_depth,
            position=admission.position,
            warning=warning,
            duplicate=admission.duplicate,
        )

    async def current_status(self, admission: Admission) -> JobStatus:
        """queued for a new job; a duplicate's status as it is now."""
        if not admission.duplicate or admission.job_id is None:
            return JobStatus.QUEUED
        record = await self.store.jobs.get(admission.job_id)
        return record.status if record else JobStatus.QUEUED


def log_admission(job: NewJob, admission: Admission) -> None:
    """One line: accepted (with the depth it left) or refused (and why)."""
    fields = traced({"route": job.route, "priority": job.priority.value,
                     "depth": admission.queue_depth}, job.headers)  # fmt: skip
    if admission.accepted:
        log.info("accepted", extra={**fields, "job_id": admission.job_id,
                                    "duplicate": admission.duplicate})  # fmt: skip
    else:
        why = "everywhere_full" if admission.everywhere_full else "route_full"
        log.warning("refused", extra={**fields, "why": why})


def _outcome(admission: Admission) -> str:
    if not admission.accepted:
        return "refused"
    return "duplicate" if admission.duplicate else "accepted"
