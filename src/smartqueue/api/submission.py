"""Turning an HTTP request into a job: body within its limit, headers on the allowlist."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping

from fastapi import Request

from smartqueue.config import FleetConfig
from smartqueue.errors import BadRequest, InvalidInput, PayloadTooLarge, QueueFull
from smartqueue.logs import traced
from smartqueue.metrics import Metrics
from smartqueue.models import PRIORITY_ORDER, EnqueueResponse, JobStatus, Priority, new_job_id
from smartqueue.openai_format import parse_json_object
from smartqueue.policy import Backpressure, DrainMeter
from smartqueue.queue import DEFAULT_PATH, Admission, NewJob
from smartqueue.store import Store

KEPT_HEADERS = frozenset({"content-type", "accept", "x-request-id", "traceparent", "tracestate"})
KEPT_PREFIX = "x-syslog-"
MAX_IDEMPOTENCY_KEY = 255

log = logging.getLogger(__name__)


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Only the allow-listed headers travel with a job; secrets never reach Redis."""
    return {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() in KEPT_HEADERS or name.lower().startswith(KEPT_PREFIX)
    }


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


def check_payload(body: bytes, content_type: str | None) -> None:
    """Refuse an empty body, and a JSON body that does not parse."""
    if not body.strip():
        raise InvalidInput("request body is empty: send the job (normally OpenAI JSON)")
    if content_type and "json" in content_type:
        try:
            json.loads(body)
        except ValueError as error:
            raise BadRequest(
                f"request body is not valid JSON: {error}", code="invalid_json"
            ) from None


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


def idempotency_digest(key: str | None) -> str | None:
    """The stored form of an Idempotency-Key: a hash, so the key itself is never kept."""
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY} characters",
            param="Idempotency-Key",
        )
    return hashlib.sha256(key.encode()).hexdigest()


def check_openai_request(body: bytes) -> None:
    """An OpenAI completion request must be a JSON object."""
    if parse_json_object(body) is None:
        raise BadRequest(
            "request body must be a JSON object (an OpenAI request)", code="invalid_json"
        )


async def build_job(
    request: Request, fleet: FleetConfig, *, limit_bytes: int, openai_path: str | None = None
) -> NewJob:
    """A NewJob from a submission request, or a 4xx naming what is wrong with it.

    `openai_path` is set for the OpenAI front door: the body must then be a JSON object, and
    the job runs on that path of the GPU.
    """
    headers = request.headers
    route = resolve_route(fleet, headers.get("x-syslog-model"))
    priority = parse_priority(headers.get("x-syslog-priority"))
    digest = idempotency_digest(headers.get("idempotency-key"))
    body = await read_body(request, limit_bytes=limit_bytes)
    check_payload(body, headers.get("content-type"))
    if openai_path is not None:
        check_openai_request(body)
    return NewJob(
        job_id=new_job_id(),
        route=route,
        priority=priority,
        payload=body,
        headers=kept_headers(headers),
        created_at=time.time(),
        idempotency_digest=digest,
        path=openai_path or DEFAULT_PATH,
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
            status=JobStatus.QUEUED,
            queue_depth=admission.queue_depth,
            position=admission.position,
            warning=warning,
            duplicate=admission.duplicate,
        )


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
