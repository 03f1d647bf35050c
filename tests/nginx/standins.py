"""Stand-ins for the GPUs and the queue behind Nginx: tiny HTTP/1.1 servers that record requests.

Each one listens on a free 127.0.0.1 port and answers every request the same way (its
`Behaviour`); the test reads `requests` to see exactly what Nginx forwarded.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType


class Behaviour(StrEnum):
    """How a stand-in answers."""

    ANSWER = "answer"  # 200 with a JSON body naming the stand-in
    UNAVAILABLE = "unavailable"  # 503, as llama.cpp does while loading a model
    STALL = "stall"  # reads the request, then never answers (a long generation)
    DROP = "drop"  # reads the request, then closes the connection without answering
    STREAM = "stream"  # SSE: one event at once, the last only after `release` is set


@dataclass(frozen=True)
class Recorded:
    """One request as the stand-in received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StandIn:
    """A recording HTTP server; use as `async with StandIn(...) as gpu:`."""

    name: str
    behaviour: Behaviour = Behaviour.ANSWER
    requests: list[Recorded] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        """Base URL of the stand-in."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> StandIn:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        self.release.set()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            self.requests.append(await _read_request(reader))
            await self._answer(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _answer(self, writer: asyncio.StreamWriter) -> None:
        if self.behaviour in (Behaviour.STALL, Behaviour.DROP):
            if self.behaviour is Behaviour.STALL:
                await self.release.wait()
            return
        if self.behaviour is Behaviour.STREAM:
            await self._stream(writer)
            return
        status = 200 if self.behaviour is Behaviour.ANSWER else 503
        body = json.dumps({"served_by": self.name, "status": status}).encode()
        writer.write(_head(status, {"Content-Type": "application/json"}, len(body)) + body)
        await writer.drain()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, {"Content-Type": "text/event-stream"}, None))
        writer.write(_chunk(b'data: {"part": 1}\n\n'))
        await writer.drain()
        await self.release.wait()
        writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()


async def _read_request(reader: asyncio.StreamReader) -> Recorded:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    request_line, *header_lines = head.split("\r\n")[:-2]
    method, path, _version = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Recorded(method=method, path=path, headers=headers, body=body)


def _head(status: int, headers: dict[str, str], length: int | None) -> bytes:
    reason = {200: "OK", 503: "Service Unavailable"}[status]
    framing = (
        {"Transfer-Encoding": "chunked"} if length is None else {"Content-Length": str(length)}
    )
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in {**headers, **framing}.items()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Blackhole:
    """A port whose connects time out: it listens with a full accept queue and never accepts.

    With a backlog of 0 the kernel queues one connection (made here) and drops further SYNs,
    so a client sees a connect timeout: a GPU host that is down or unreachable.
    """

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=1)

    @property
    def url(self) -> str:
        """Base URL of the blackhole."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._filler.close()
        self._listener.close()
