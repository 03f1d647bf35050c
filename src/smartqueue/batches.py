"""The Batch API's vocabulary and decisions: input lines checked, output lines written.

Pure: bytes and the fleet in, values out; the store keeps batches, the batch runner
(batch_runner.py) feeds them to the queue and writes their files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from smartqueue.config import FleetConfig

BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
COMPLETION_WINDOW = "24h"
COMPLETION_WINDOW_S = 86_400
MAX_REPORTED_ERRORS = 100  # a failed batch names at most this many bad lines


class BatchStatus(StrEnum):
    """OpenAI's batch statuses."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


ENDED = frozenset({BatchStatus.FAILED, BatchStatus.COMPLETED, BatchStatus.EXPIRED,
                   BatchStatus.CANCELLED})  # fmt: skip


class Stop(StrEnum):
    """Why a batch stopped feeding before its last line (its final status names it)."""

    NONE = ""
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True)
class LineError:
    """A bad input line, as OpenAI reports it in a failed batch's `errors`."""

    line: int
    code: str
    message: str
    param: str | None = None

    def as_json(self) -> dict[str, Any]:
        """OpenAI's BatchError shape."""
        return {"code": self.code, "line": self.line, "message": self.message,
                "param": self.param}  # fmt: skip


@dataclass(frozen=True)
class BatchRequest:
    """One valid input line: what runs as a job of the batch."""

    line: int
    custom_id: str
    route: str
    path: str
    body: bytes


def route_for_model(fleet: FleetConfig, model: str) -> str | None:
    """The route a model name means: a route's own name, else the route a GPU serving it
    leads (preferred first), else any route listing such a GPU."""
    if model in fleet.routes:
        return model
    serving = {gpu.name for gpu in fleet.gpus if gpu.model == model}
    for route, members in fleet.routes.items():
        if members[0] in serving:
            return route
    for route, members in fleet.routes.items():
        if serving.intersection(members):
            return route
    return None


@dataclass(frozen=True)
class Checking:
    """What every line of one batch is checked against."""

    fleet: FleetConfig
    endpoint: str
    route: str | None = None  # X-Syslog-Model given at batch creation: every line's route


def parse_line(raw: bytes, number: int, checking: Checking) -> BatchRequest | LineError:
    """One input line as a request, or the first thing wrong with it."""
    try:
        document = json.loads(raw)
    except ValueError:
        return LineError(number, "invalid_json_line", "This line is not parseable as valid JSON.")
    if not isinstance(document, dict):
        return LineError(number, "invalid_json_line", "This line is not a JSON object.")
    return _request(document, number, checking)


def _request(document: dict[str, Any], number: int, checking: Checking) -> BatchRequest | LineError:
    custom_id, body = document.get("custom_id"), document.get("body")
    if not isinstance(custom_id, str) or not custom_id:
        return LineError(number, "missing_required_parameter", "custom_id must be a non-empty "
                         "string.", "custom_id")  # fmt: skip
    if document.get("method") != "POST":
        return LineError(number, "invalid_method", "method must be POST.", "method")
    if document.get("url") != checking.endpoint:
        return LineError(number, "invalid_url", f"url must be the batch's endpoint "
                         f"{checking.endpoint}.", "url")  # fmt: skip
    if not isinstance(body, dict):
        return LineError(number, "invalid_body", "body must be a JSON object.", "body")
    if body.get("stream"):
        return LineError(number, "invalid_body", "streaming is not supported in a batch.",
                         "body.stream")  # fmt: skip
    route = checking.route or route_for_model(checking.fleet, str(body.get("model", "")))
    if route is None:
        return LineError(number, "model_not_found", f"model {body.get('model')!r} is served by "
                         "no route of the fleet.", "body.model")  # fmt: skip
    return BatchRequest(number, custom_id, route, checking.endpoint, json.dumps(body).encode())


def input_lines(data: bytes) -> list[tuple[int, bytes]]:
    """(line number, line) for every non-blank line, numbered from 1 as the file is."""
    return [(index, raw) for index, raw in enumerate(data.split(b"\n"), start=1) if raw.strip()]


@dataclass(frozen=True)
class Validation:
    """An input file checked line by line: how many requests, and the bad lines (first few)."""

    total: int
    errors: list[LineError]


def validate_input(data: bytes, checking: Checking, *, max_requests: int) -> Validation:
    """Every line parsed and checked, custom_ids unique; the first bad lines reported."""
    seen: set[str] = set()
    errors: list[LineError] = []
    lines = input_lines(data)
    for number, raw in lines:
        parsed = parse_line(raw, number, checking)
        if isinstance(parsed, BatchRequest) and parsed.custom_id in seen:
            parsed = LineError(number, "duplicate_custom_id", f"custom_id {parsed.custom_id!r} "
                               "appears on an earlier line.", "custom_id")  # fmt: skip
        if isinstance(parsed, LineError):
            errors.append(parsed)
        else:
            seen.add(parsed.custom_id)
    if not lines:
        errors.append(LineError(1, "empty_file", "The input file has no request."))
    if len(lines) > max_requests:
        errors.append(LineError(max_requests + 1, "too_many_requests",
                                f"A batch holds at most {max_requests} requests."))  # fmt: skip
    return Validation(len(lines), errors[:MAX_REPORTED_ERRORS])


def output_line(*, job_id: str, custom_id: str, status: int, body: bytes) -> bytes:
    """An output file line: the GPU's answer to one request."""
    response = {"status_code": status, "request_id": job_id, "body": _json_or_text(body)}
    return _line(job_id, custom_id, response, None)


def error_line(
    *, job_id: str, custom_id: str, code: str, message: str,
    answer: tuple[int, bytes] | None = None,
) -> bytes:  # fmt: skip
    """An error file line: a request that failed for good (with the GPU's answer, if any)."""
    response = None
    if answer is not None:
        response = {"status_code": answer[0], "request_id": job_id,
                    "body": _json_or_text(answer[1])}  # fmt: skip
    return _line(job_id, custom_id, response, {"code": code, "message": message})


def unrun_line(custom_id: str, stop: Stop) -> bytes:
    """The error line of a request that never ran because its batch stopped first."""
    code, why = {
        Stop.CANCELLED: ("batch_cancelled", "its batch was cancelled"),
        Stop.EXPIRED: ("batch_expired", "the completion window expired first"),
        Stop.NONE: ("batch_request_not_run", "it has no recorded outcome"),  # never expected
    }[stop]
    error = {"code": code, "message": f"This request was not run: {why}."}
    return _line(None, custom_id, None, error)


def _line(job_id: str | None, custom_id: str, response: Any, error: Any) -> bytes:
    line_id = f"batch_req_{job_id}" if job_id else f"batch_req_unrun_{custom_id}"
    document = {"id": line_id, "custom_id": custom_id, "response": response, "error": error}
    return json.dumps(document, separators=(",", ":")).encode()


def _json_or_text(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def final_status(stop: Stop) -> BatchStatus:
    """The status a batch ends with once every fed request ended."""
    return {Stop.NONE: BatchStatus.COMPLETED, Stop.CANCELLED: BatchStatus.CANCELLED,
            Stop.EXPIRED: BatchStatus.EXPIRED}[stop]  # fmt: skip


def route_room(*, waiting: int, slots: int, per_slot: int = 2) -> int:
    """Batch requests to add to a route now: at most `per_slot` x its slots wait at a time."""
    return max(0, per_slot * slots - waiting)


@dataclass(frozen=True)
class StoredFile:
    """A Files API record (the bytes are in the blob directory, under the id)."""

    id: str
    owner: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    batch: str = ""  # the open batch reading it, if any: it cannot be deleted meanwhile

    def as_openai(self) -> dict[str, Any]:
        """OpenAI's File object."""
        return {"id": self.id, "object": "file", "bytes": self.bytes,
                "created_at": self.created_at, "filename": self.filename,
                "purpose": self.purpose, "status": "processed", "expires_at": None,
                "status_details": None}  # fmt: skip


@dataclass(frozen=True)
class StoredBatch:
    """A batch's record: what OpenAI shows, plus the feeding cursor and who owns it."""

    id: str
    owner: str
    status: BatchStatus
    endpoint: str
    input_file_id: str
    created_at: int
    expires_at: int
    total: int = 0
    completed: int = 0
    failed: int = 0
    fed: int = 0  # requests fed into the queue so far (the cursor, in requests)
    next_offset: int = 0  # byte offset in the input file of the next request to feed
    stop: Stop = Stop.NONE
    route: str = ""  # X-Syslog-Model given at creation: every request's route
    metadata: dict[str, str] | None = None
    errors: list[dict[str, Any]] | None = None
    output_file_id: str = ""
    error_file_id: str = ""
    times: dict[str, int] | None = None  # in_progress_at, cancelling_at, ... as set

    def as_openai(self) -> dict[str, Any]:
        """OpenAI's Batch object."""
        times = {name: (self.times or {}).get(name) for name in TIMESTAMP_FIELDS}
        errors = {"object": "list", "data": self.errors} if self.errors else None
        return {"id": self.id, "object": "batch", "endpoint": self.endpoint,
                "errors": errors, "input_file_id": self.input_file_id,
                "completion_window": COMPLETION_WINDOW, "status": self.status.value,
                "output_file_id": self.output_file_id or None,
                "error_file_id": self.error_file_id or None, "created_at": self.created_at,
                "expires_at": self.expires_at, **times,
                "request_counts": {"total": self.total, "completed": self.completed,
                                   "failed": self.failed},
                "metadata": self.metadata}  # fmt: skip


TIMESTAMP_FIELDS = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at",
                    "cancelling_at", "cancelled_at")  # fmt: skip
