"""The service's HTTP protocol: a header block over the limit is a 431, a large body is not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from smartqueue.http_server import HeaderLimitedHttpToolsProtocol
from tests.support.ports import free_port
from tests.support.waiting import wait_until

LIMIT_BYTES = 8 * 1024


async def body_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer 200 with the length of the request body."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size, more = size + len(message.get("body", b"")), message.get("more_body", False)
    answer = str(size).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """A uvicorn server with the protocol on a free port."""
    chosen = free_port()
    config = uvicorn.Config(body_length, host="127.0.0.1", port=chosen, lifespan="off",
                            log_config=None, access_log=False, http=HeaderLimitedHttpToolsProtocol,
                            h11_max_incomplete_event_size=LIMIT_BYTES)  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await wait_until(started, timeout_s=10, what="uvicorn started")
    yield chosen
    server.should_exit = True
    await task


async def exchange(port: int, request: bytes) -> bytes:
    """Send `request` (in 4 KiB writes) and read until the server closes or answers once."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for start in range(0, len(request), 4096):
            writer.write(request[start : start + 4096])
            await writer.drain()
    except ConnectionError:
        pass  # the server answered and closed while the request was still being sent
    answer = await asyncio.wait_for(reader.read(65536), timeout=5)
    writer.close()
    return answer


def post(headers: bytes, body: bytes = b"x") -> bytes:
    """A POST with `headers` (already formatted) and `body`."""
    return (b"POST / HTTP/1.1\r\nhost: t\r\n" + headers
            + b"content-length: %d\r\n\r\n" % len(body) + body)  # fmt: skip


async def test_header_block_over_the_limit_is_a_431_in_the_error_shape(port: int) -> None:
    answer = await exchange(port, post(b"x-syslog-note: " + b"x" * (4 * LIMIT_BYTES) + b"\r\n"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert json.loads(body)["error"]["code"] == "headers_too_large"


async def test_header_without_end_is_cut_off_near_the_limit(port: int) -> None:
    answer = await exchange(port, b"POST / HTTP/1.1\r\nx-a: " + b"x" * (64 * LIMIT_BYTES))
    assert answer.startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize("body_bytes", [1, 3 * LIMIT_BYTES, 1024 * 1024])
async def test_body_past_the_header_limit_is_served(port: int, body_bytes: int) -> None:
    answer = await exchange(port, post(b"x-a: b\r\n", b"y" * body_bytes))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(str(body_bytes).encode())


async def test_headers_just_under_the_limit_are_served(port: int) -> None:
    answer = await exchange(port, post(b"x-a: " + b"x" * (LIMIT_BYTES - 200) + b"\r\n"))
    assert answer.startswith(b"HTTP/1.1 200 ")
