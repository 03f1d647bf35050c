"""Calling a GPU's OpenAI-compatible server: one shared httpx client, a deadline per job.

httpx read timeouts are per chunk, so a server dripping one byte at a time never trips them;
the whole call therefore runs under `asyncio.timeout(deadline_s)`. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from smartqueue.config import FleetConfig, GpuConfig
from smartqueue.openai_format import (
    parse_json_object,
    transcript_is_complete,
    wants_stream,
    with_model,
)
from smartqueue.policy import Failure
from smartqueue.queue import DEFAULT_ACCEPT, DEFAULT_CONTENT_TYPE, StreamEntry
from smartqueue.sse import split_events

ChunkSink = Callable[[bytes], Awaitable[None]]

JOB_HEADER = "X-Smartqueue-Job-Id"
SENDABLE_VALUE = re.compile(r"[\t\x20-\x7e]*")  # what HTTP/1.1 carries as a header value


@dataclass(frozen=True)
class GpuAnswer:
    """The GPU answered 2xx with a complete body."""

    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True)
class GpuFailure:
    """The call failed; `status` and `body` are the GPU's when it answered with an error."""

    failure: Failure
    message: str
    status: int | None = None
    body: bytes | None = None
    retry_after_s: float | None = None


GpuOutcome = GpuAnswer | GpuFailure


class ResultTooLarge(Exception):
    """The answer grew past the configured result cap."""


def new_http_client(
    *, connect_timeout_s: float = 3.0, read_timeout_s: float = 60.0
) -> httpx.AsyncClient:
    """The shared client: explicit timeouts, no redirects, no proxies from the environment."""
    timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    return httpx.AsyncClient(
        timeout=timeout, limits=limits, follow_redirects=False, trust_env=False
    )


def retry_after_s(headers: httpx.Headers) -> float | None:
    """Retry-After (or retry-after-ms) in seconds, when given as a number."""
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            return None
    value = headers.get("retry-after")
    if value is not None and value.strip().isdigit():
        return float(value)
    return None


def error_message(body: bytes, status: int) -> str:
    """The GPU's own error message when its body has one."""
    document = parse_json_object(body)
    error = document.get("error") if document else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str):
        return message
    if isinstance(error, str):
        return error
    return f"GPU answered HTTP {status}"


def unsendable(error: BaseException) -> GpuFailure:
    """The request could not be built or encoded (UnicodeError is a ValueError)."""
    return GpuFailure(Failure.INVALID_REQUEST,
                      f"the request cannot be sent: {type(error).__name__}")  # fmt: skip


class GpuClient:
    """Sends a job to a GPU and reports the outcome as a value."""

    def __init__(self, http: httpx.AsyncClient, fleet: FleetConfig, *, max_result_bytes: int):
        self.http = http
        self.max_result_bytes = max_result_bytes
        self.api_keys = {
            gpu.name: os.environ.get(gpu.api_key_env, "") for gpu in fleet.gpus if gpu.api_key_env
        }

    def request_headers(self, gpu: GpuConfig, entry: StreamEntry) -> dict[str, str]:
        """The job's allow-listed headers plus its id, and the GPU's own key if it has one."""
        headers = {name: value for name, value in entry.headers.items()
                   if not name.startswith("x-syslog-")}  # fmt: skip
        headers.setdefault("content-type", DEFAULT_CONTENT_TYPE)
        headers.setdefault("accept", DEFAULT_ACCEPT)
        headers["accept-encoding"] = "identity"  # bodies are read raw, capped and stored as sent
        headers[JOB_HEADER] = entry.job_id
        if key := self.api_keys.get(gpu.name):
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def call(
        self, gpu: GpuConfig, entry: StreamEntry, *, deadline_s: float, on_chunk: ChunkSink | None
    ) -> GpuOutcome:
        """Run the job on `gpu` within `deadline_s`; streamed chunks go to `on_chunk`."""
        built = self.build(gpu, entry)
        if isinstance(built, GpuFailure):
            return built
        request, body = built
        try:
            async with asyncio.timeout(deadline_s):
                return await self._send(request, streamed=wants_stream(body), on_chunk=on_chunk)
        except TimeoutError:
            return GpuFailure(Failure.TIMEOUT, f"no complete answer within {deadline_s:g} s")
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            return GpuFailure(Failure.CONNECT, f"cannot connect to {gpu.name}: {error}")
        except httpx.LocalProtocolError as error:  # h11 refused to send what we built
            return unsendable(error)
        except ResultTooLarge:
            limit = self.max_result_bytes
            return GpuFailure(Failure.TOO_LARGE, f"the GPU's answer is over the {limit} byte cap")
        except httpx.HTTPError as error:
            return GpuFailure(Failure.PROTOCOL, f"{type(error).__name__}: {error}")

    def build(self, gpu: GpuConfig, entry: StreamEntry) -> tuple[httpx.Request, bytes] | GpuFailure:
        """The request for `gpu`, or an INVALID_REQUEST failure when the job cannot be encoded.

        A failure here happened before anything left: it is the job's, never the GPU's.
        """
        try:
            body = with_model(entry.payload, gpu.model)
            headers = self.request_headers(gpu, entry)
            if not all(SENDABLE_VALUE.fullmatch(value) for value in headers.values()):
                raise ValueError("a header value is not printable ASCII")
            request = self.http.build_request("POST", gpu.url + entry.path, content=body,
                                              headers=headers)  # fmt: skip
        except (ValueError, TypeError, RecursionError, MemoryError) as error:
            return unsendable(error)
        return request, body

    async def _send(
        self, request: httpx.Request, *, streamed: bool, on_chunk: ChunkSink | None
    ) -> GpuOutcome:
        response = await self.http.send(request, stream=True)
        try:
            if response.status_code >= 300:
                return await self._error(response)
            if streamed and on_chunk is not None:
                return await self._relay(response, on_chunk)
            return await self._whole(response)
        finally:
            await response.aclose()

    async def _read_capped(self, response: httpx.Response) -> bytes:
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > self.max_result_bytes:
                raise ResultTooLarge
        return bytes(body)

    async def _error(self, response: httpx.Response) -> GpuFailure:
        body = await self._read_capped(response)
        status = response.status_code
        return GpuFailure(Failure.HTTP, error_message(body, status), status=status, body=body,
                          retry_after_s=retry_after_s(response.headers))  # fmt: skip

    async def _whole(self, response: httpx.Response) -> GpuOutcome:
        body = await self._read_capped(response)
        content_type = response.headers.get("content-type", "application/octet-stream")
        if "json" in content_type and parse_json_object(body) is None:
            return GpuFailure(Failure.PROTOCOL, "the GPU answered invalid JSON")
        return GpuAnswer(response.status_code, body, content_type)

    async def _relay(self, response: httpx.Response, on_chunk: ChunkSink) -> GpuOutcome:
        transcript = bytearray()
        pending = b""
        async for chunk in response.aiter_raw():
            transcript += chunk
            if len(transcript) > self.max_result_bytes:
                raise ResultTooLarge
            events, pending = split_events(pending + chunk)
            for event in events:
                await on_chunk(event)
        if not transcript_is_complete(bytes(transcript)):
            return GpuFailure(Failure.PROTOCOL, "the GPU's stream ended before data: [DONE]")
        return GpuAnswer(response.status_code, bytes(transcript), "text/event-stream")
