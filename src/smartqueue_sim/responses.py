"""HTTP answers of the simulator: OpenAI errors, and the broken answers faults need."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from smartqueue_sim.completions import error_body

T = TypeVar("T")
SSE_MEDIA_TYPE = "text/event-stream"
# nginx's code for "client closed the request"; nobody receives it.
CLIENT_CLOSED = 499


def error_response(
    status: int,
    message: str,
    *,
    error_type: str,
    param: str | None = None,
    retry_after_s: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An OpenAI-shaped error, with Retry-After when given."""
    headers = dict(headers or {})
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    body = error_body(message, error_type=error_type, code=status, param=param)
    return JSONResponse(body, status_code=status, headers=headers)


def client_closed_response() -> Response:
    """The answer to a request whose client already left."""
    return Response(status_code=CLIENT_CLOSED)


def sse_response(body: AsyncIterator[bytes], *, truncated: bool = False) -> StreamingResponse:
    """A server-sent event stream; `truncated` drops the connection instead of ending it."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    response_class = TruncatedStreamingResponse if truncated else StreamingResponse
    return response_class(body, media_type=SSE_MEDIA_TYPE, headers=headers)


class TruncatedStreamingResponse(StreamingResponse):
    """Streams its body, then returns without ending the response, so the server drops it."""

    async def stream_response(self, send: Send) -> None:
        """Send the start and every chunk, but never the final empty chunk."""
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async for chunk in self.body_iterator:
            data = chunk if isinstance(chunk, bytes | memoryview) else chunk.encode(self.charset)
            await send({"type": "http.response.body", "body": data, "more_body": True})


class TruncatedResponse(Response):
    """Announces the full Content-Length, sends only the first half, then drops the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send headers and half the body; returning without more_body=False aborts it."""
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = bytes(self.body[: len(self.body) // 2])
        await send({"type": "http.response.body", "body": half, "more_body": True})


def drip_response(body: bytes, *, media_type: str, interval_s: float) -> StreamingResponse:
    """Headers at once, then one byte of `body` every `interval_s` seconds."""
    headers = {"Content-Length": str(len(body))}
    return StreamingResponse(_drip(body, interval_s), media_type=media_type, headers=headers)


async def _drip(body: bytes, interval_s: float) -> AsyncIterator[bytes]:
    for index in range(len(body)):
        if index:
            await asyncio.sleep(interval_s)
        yield body[index : index + 1]


class _ClientGone(Exception):
    """The client closed the connection."""


async def _raise_on_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    raise _ClientGone


async def run_unless_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """Await `work`, cancelling it if the client disconnects first (then return None)."""
    result: T | None = None
    try:
        async with asyncio.TaskGroup() as group:
            watcher = group.create_task(_raise_on_disconnect(request))
            result = await work
            watcher.cancel()
    except* _ClientGone:
        result = None
    return result


async def wait_for_disconnect(request: Request) -> None:
    """Return once the client has gone (the `hang` fault never answers before that)."""
    await run_unless_disconnected(request, asyncio.Event().wait())
