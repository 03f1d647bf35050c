"""Benchmark 2: what the queue path adds over calling the same sim GPU directly.

A chat request through `POST /v1/chat/completions` of smartqueue (wait mode: the connection is
held until the job ran) vs the same request straight to the sim, at 1 and at 8 concurrent
clients (closed loop); for `stream: true`, the time to the first SSE chunk on both paths.
The sim is fast (`--speed 1000`, 8 slots, 8 output tokens) so the GPU's own time is small.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from bench.config import BenchConfig
from bench.httpload import KEEPALIVE_EXPIRY_S
from bench.procs import Processes, gpu_entry, write_fleet
from bench.stats import Bar, Section, percentile

SLOTS = 8
CLIENTS = (1, 8)
MAX_TOKENS = 8
HEADERS = {"X-Syslog-Model": "default"}
Call = Callable[[httpx.AsyncClient], Awaitable[float]]


def chat(*, stream: bool) -> dict[str, object]:
    """The request both paths receive."""
    body: dict[str, object] = {
        "model": "sim-model",
        "max_tokens": MAX_TOKENS,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    return body


async def complete(client: httpx.AsyncClient) -> float:
    """Seconds for one whole non-streamed answer."""
    start = time.perf_counter()
    response = await client.post("/v1/chat/completions", json=chat(stream=False))
    response.raise_for_status()
    return time.perf_counter() - start


async def first_chunk(client: httpx.AsyncClient) -> float:
    """Seconds to the first SSE `data:` line of a streamed answer (then read to the end)."""
    start = time.perf_counter()
    elapsed = float("nan")
    async with client.stream("POST", "/v1/chat/completions", json=chat(stream=True)) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data:") and elapsed != elapsed:
                elapsed = time.perf_counter() - start
    return elapsed


async def closed_loop(url: str, call: Call, *, clients: int, requests: int) -> list[float]:
    """`clients` workers each sending `requests / clients` calls back to back; seconds each."""
    results: list[float] = []

    async def worker() -> None:
        limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S)
        async with httpx.AsyncClient(
            base_url=url, headers=HEADERS, timeout=30, limits=limits
        ) as client:
            await call(client)  # warm the connection
            for _ in range(requests // clients):
                results.append(await call(client))

    async with asyncio.TaskGroup() as group:
        for _ in range(clients):
            group.create_task(worker())
    return results


def run(config: BenchConfig) -> Section:
    """Start Redis, one fast sim and smartqueue in front of it; interleave direct and queue."""
    section = Section("Added latency: POST /v1/chat/completions through the queue vs direct")
    with Processes(config.workdir / "latency") as procs:
        redis_url = procs.redis()
        sim = procs.sim("gpu", slots=SLOTS, speed=1000)
        fleet = write_fleet(
            procs.workdir / "fleet" / "fleet.yaml", [gpu_entry(sim, slots=SLOTS)], profiles={}
        )
        queue = procs.service("smartqueue", redis_url=redis_url, fleet_file=fleet)
        urls = {"direct": sim.url, "queue": queue}
        for _ in range(config.rounds):
            measure_round(config, section, urls)
    for clients in CLIENTS:
        for q in ("p50", "p99"):
            name = f"added {q}, {clients} client(s)"
            section.difference(
                name, f"queue {q}, {clients} client(s)", f"direct {q}, {clients} client(s)"
            )
        section.difference(
            f"added time to first chunk p50, {clients} client(s)",
            f"queue stream TTFC p50, {clients} client(s)",
            f"direct stream TTFC p50, {clients} client(s)",
        )
        section.difference(
            f"added time to first chunk p99, {clients} client(s)",
            f"queue stream TTFC p99, {clients} client(s)",
            f"direct stream TTFC p99, {clients} client(s)",
        )
        section.bars += [
            Bar(f"added p50 <= 2 ms at {clients} client(s)", f"added p50, {clients} client(s)", 2),
            Bar(f"added p99 <= 8 ms at {clients} client(s)", f"added p99, {clients} client(s)", 8),
        ]
    section.notes.append(
        f"Sim: llama.cpp engine, default profile at --speed 1000, {SLOTS} slots; {MAX_TOKENS} "
        f"output tokens; {config.latency_requests} requests per figure and round, closed loop "
        "(httpx, keep-alive). Service with default settings (consumers = the fleet's slots). "
        "Added = queue figure minus direct figure of the same round (p99 minus p99)."
    )
    return section


def measure_round(config: BenchConfig, section: Section, urls: dict[str, str]) -> None:
    """One round: for each client count, direct then queue, whole answers then streams."""
    for clients in CLIENTS:
        for path, url in urls.items():
            seconds = asyncio.run(
                closed_loop(url, complete, clients=clients, requests=config.latency_requests)
            )
            ms = [s * 1000 for s in seconds]
            section.add(f"{path} p50, {clients} client(s)", "ms", percentile(ms, 50))
            section.add(f"{path} p99, {clients} client(s)", "ms", percentile(ms, 99))
            section.add(
                f"{path} throughput, {clients} client(s)",
                "req/s",
                len(ms) / max(sum(seconds) / clients, 1e-9),
            )
            seconds = asyncio.run(
                closed_loop(
                    url, first_chunk, clients=clients, requests=config.latency_requests // 2
                )
            )
            ms = [s * 1000 for s in seconds]
            section.add(f"{path} stream TTFC p50, {clients} client(s)", "ms", percentile(ms, 50))
            section.add(f"{path} stream TTFC p99, {clients} client(s)", "ms", percentile(ms, 99))
