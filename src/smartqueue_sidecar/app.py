"""The sidecar's HTTP app: `/health[?gpu=N]`, `/gpus` and its own check `/livez`.

Readings are taken at request time (a few file reads or library calls, well under a
millisecond), so two requests never see a stale number. Library calls run in Starlette's
thread pool, one at a time.
"""

from __future__ import annotations

import threading
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smartqueue_sidecar.readings import GpuReading, GpuSource, ReadError


class ApiError(Exception):
    """An answer other than 200, in the JSON shape `{"error": {"message", "type", "code"}}`."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": error_type(status), "code": code}}
        self.body["error"].update(extra)


def error_type(status: int) -> str:
    """The error's `type`, from its status."""
    return "invalid_request_error" if status < 500 else "gpu_unreadable"


class GpuReader:
    """The source, read by one request thread at a time."""

    def __init__(self, source: GpuSource) -> None:
        self.source = source
        self._lock = threading.Lock()

    def read(self, index: int) -> GpuReading:
        """GPU `index` now; ApiError 503 with the reason when it cannot be read."""
        with self._lock:
            try:
                return self.source.read(index)
            except ReadError as error:
                raise ApiError(503, "read_failed", str(error)) from None

    def read_all(self) -> list[tuple[int, GpuReading | ApiError]]:
        """Every GPU's reading, or the error that stood in its way."""
        results: list[tuple[int, GpuReading | ApiError]] = []
        for index in range(len(self.source.devices)):
            try:
                results.append((index, self.read(index)))
            except ApiError as error:
                results.append((index, error))
        return results


def requested_gpu(query: QueryParams, gpu_count: int) -> int:
    """The `gpu` query parameter (0 when absent); 400 when malformed, 404 when no such GPU."""
    values = query.getlist("gpu")
    if len(values) > 1:
        raise ApiError(400, "invalid_gpu", "give `gpu` at most once")
    text = values[0] if values else "0"
    if not (text.isascii() and text.isdigit()):
        raise ApiError(400, "invalid_gpu", f"`gpu` must be a GPU index (0, 1, ...), not {text!r}")
    index = int(text)
    if index >= gpu_count:
        existing = list(range(gpu_count))
        message = f"no GPU {index} on this host; GPUs: {', '.join(map(str, existing))}"
        raise ApiError(404, "unknown_gpu", message, gpus=existing)
    return index


def build_app(source: GpuSource) -> Starlette:
    """The app serving `source`."""
    reader = GpuReader(source)

    def health(request: Request) -> Response:
        index = requested_gpu(request.query_params, len(source.devices))
        return JSONResponse(reader.read(index).as_json())

    def gpus(request: Request) -> Response:
        return JSONResponse({"source": source.name, "gpus": gpu_entries(reader)})

    def livez(request: Request) -> Response:
        failures = {str(i): str(r) for i, r in reader.read_all() if isinstance(r, ApiError)}
        status = "failing" if failures else "ok"
        body = {"status": status, "source": source.name, "gpus": len(source.devices)}
        return JSONResponse({**body, "errors": failures}, status_code=503 if failures else 200)

    routes = [Route("/health", health), Route("/gpus", gpus), Route("/livez", livez)]
    return Starlette(
        routes=routes,
        exception_handlers={ApiError: api_error_response, HTTPException: http_error_response},
    )


def gpu_entries(reader: GpuReader) -> list[dict[str, Any]]:
    """`/gpus`: each GPU's index, device name and reading (or the error reading it)."""
    entries: list[dict[str, Any]] = []
    for index, result in reader.read_all():
        entry: dict[str, Any] = {"gpu": index, "device": reader.source.devices[index]}
        entry.update(result.as_json() if isinstance(result, GpuReading) else result.body)
        entries.append(entry)
    return entries


async def api_error_response(request: Request, error: Exception) -> Response:
    """An ApiError as its JSON."""
    assert isinstance(error, ApiError)
    return JSONResponse(error.body, status_code=error.status)


async def http_error_response(request: Request, error: Exception) -> Response:
    """Starlette's own 404/405 in the same JSON shape."""
    assert isinstance(error, HTTPException)
    body = ApiError(error.status_code, "http_error", str(error.detail)).body
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)
