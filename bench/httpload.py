"""HTTP load: wrk for closed-loop throughput, and a raw-socket open-loop driver for latency.

The open-loop driver sends requests at fixed intervals whatever the answers do, and measures each
latency from the moment the request was due, so a stalled server is not hidden (no coordinated
omission). It speaks just enough HTTP/1.1 over keep-alive connections to stay cheap.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.procs import LOAD_CPU, pinned

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Syslog-Model"] = "default"
"""
ENQUEUE_HEADERS = {"X-Syslog-Model": "default"}
# uvicorn closes idle keep-alive connections after 5 s; closing ours first avoids sending a
# request on a connection the server is closing ("Server disconnected without a response").
KEEPALIVE_EXPIRY_S = 2.0
ENQUEUE_RETRIES = 5
UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def chat_body(size_bytes: int, *, max_tokens: int = 16) -> bytes:
    """An OpenAI chat request of exactly `size_bytes` bytes (padded in the message text)."""

    def render(text: str) -> bytes:
        body = {
            "model": "default",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}],
        }
        return json.dumps(body, separators=(",", ":")).encode()

    bare = len(render(""))
    if size_bytes < bare:
        raise ValueError(f"a chat body needs at least {bare} bytes")
    return render("x" * (size_bytes - bare))


@dataclass(frozen=True)
class WrkResult:
    """What wrk reports: requests per second, latency percentiles and errors."""

    requests_per_s: float
    requests: int
    non_2xx: int
    errors: int
    p50_ms: float
    p99_ms: float


def write_wrk_script(path: Path, body: bytes) -> Path:
    """A wrk Lua script POSTing `body` with `X-Syslog-Model: default`."""
    path.write_text(WRK_SCRIPT.format(body=_lua_string(body.decode())), encoding="utf-8")
    return path


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(url: str, script: Path, *, duration_s: float, connections: int) -> WrkResult:
    """wrk (one thread, pinned to the load core) against `url` for `duration_s`."""
    args = wrk_args(url, script, duration_s=duration_s, connections=connections)
    output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def wrk_args(url: str, script: Path, *, duration_s: float, connections: int) -> list[str]:
    """The wrk command line: one thread pinned to the load core, latency percentiles on."""
    return pinned(
        LOAD_CPU,
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration_s:g}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
    )


def parse_wrk(output: str) -> WrkResult:
    """Pick the figures out of wrk's text report."""

    def number(pattern: str) -> float:
        match = re.search(pattern, output)
        return float(match.group(1)) if match else 0.0

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return WrkResult(
        requests_per_s=number(r"Requests/sec:\s+([\d.]+)"),
        requests=int(number(r"(\d+) requests in")),
        non_2xx=int(number(r"Non-2xx or 3xx responses: (\d+)")),
        errors=errors,
        p50_ms=_wrk_latency(output, "50%"),
        p99_ms=_wrk_latency(output, "99%"),
    )


def _wrk_latency(output: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    return float(match.group(1)) * UNITS_S[match.group(2)] * 1000 if match else float("nan")


def raw_request(url: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """The bytes of an HTTP/1.1 keep-alive POST of `body` to `url`."""
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class OpenLoopResult:
    """Latencies (seconds, from each request's due time) and what went wrong."""

    latencies_s: list[float] = field(default_factory=list)
    failures: int = 0
    sent: int = 0


class _Connections:
    """Idle keep-alive connections to one server, opened on demand."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        return await asyncio.open_connection(self.host, self.port)

    def give_back(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.idle.append(connection)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _exchange(
    connections: _Connections, request: bytes, due: float, result: OpenLoopResult
) -> None:
    try:
        reader, writer = await connections.take()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        result.latencies_s.append(time.perf_counter() - due)
        if head[9:10] != b"2":
            result.failures += 1
        connections.give_back((reader, writer))
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        result.failures += 1


async def open_loop(
    url: str, request: bytes, *, rate_per_s: float, duration_s: float
) -> OpenLoopResult:
    """Send `request` to `url`'s server at `rate_per_s` for `duration_s`; latencies per request."""
    parts = urlsplit(url)
    connections = _Connections(parts.hostname or "127.0.0.1", parts.port or 80)
    result = OpenLoopResult()
    interval_s, start = 1.0 / rate_per_s, time.perf_counter()
    count = int(rate_per_s * duration_s)
    async with asyncio.TaskGroup() as group:
        for index in range(count):
            due = start + index * interval_s
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            group.create_task(_exchange(connections, request, due, result))
            result.sent += 1
    connections.close()
    return result


async def enqueue_many(url: str, body: bytes, count: int, *, concurrency: int = 16) -> list[str]:
    """Submit `count` copies of `body` through `POST /enqueue`; the ids of the accepted jobs.

    A 503 or 429 is retried after its Retry-After (at most 1 s, 5 attempts), as a client would.
    """
    ids: list[str] = []
    limit = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S)
    async with httpx.AsyncClient(
        base_url=url, headers=ENQUEUE_HEADERS, timeout=30, limits=limits
    ) as client:

        async def one() -> None:
            async with limit:
                for _ in range(ENQUEUE_RETRIES):
                    response = await client.post("/enqueue", content=body)
                    if response.status_code not in (429, 503):
                        break
                    await asyncio.sleep(min(1.0, float(response.headers.get("retry-after", 1))))
                response.raise_for_status()
                ids.append(str(response.json()["job_id"]))

        await asyncio.gather(*(one() for _ in range(count)))
    return ids
