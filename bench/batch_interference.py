"""Batch interference: interactive latency with and without a large batch on the same fleet.

    python -m bench.batch_interference [--lines 3000] [--seconds 20]

Starts on free loopback ports: redis-server, two sim GPUs (two slots each, one route) and one
smartqueue replica. Then, measured from outside as a client sees it:
1. the fleet's capacity: slots / the mean service time of one request sent straight to a sim;
2. interactive load alone: Poisson arrivals at half the capacity through smartqueue's OpenAI
   front door for `--seconds` -> p50/p99 latency;
3. the same load while a `--lines` batch runs -> p50/p99 again, and the batch's throughput in
   that window as a fraction of the capacity the interactive load left idle.
Standalone (the shared bench harness lives on its own branch); prints its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml

LOOPBACK = "127.0.0.1"
SIM_COMMAND = str(Path(sys.executable).with_name("smartqueue-sim"))  # the sibling package
SLOTS, MAX_TOKENS = 2, 16
CHAT = {"model": "default", "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": MAX_TOKENS}  # fmt: skip


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run `args` until the block ends (SIGTERM, then SIGKILL)."""
    with log.open("wb") as out:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        child = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    try:
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def wait_for(check: Any, what: str, timeout_s: float = 60) -> Any:
    """Poll `check()` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if found := check():
                return found
        except (OSError, httpx.TransportError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up")


def start_stack(stack: ExitStack, workdir: Path, *, speed: float) -> str:
    """redis, two sims and one replica; the replica's URL."""
    redis_port = free_port()
    stack.enter_context(process(["redis-server", "--port", str(redis_port), "--bind", LOOPBACK,
                                 "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                                workdir / "redis.log"))  # fmt: skip
    gpus = []
    for name in ("a", "b"):
        ready = workdir / f"{name}.ready.json"
        stack.enter_context(process(
            [SIM_COMMAND, "gpu", "--port=0", "--sidecar-port=0",
             f"--slots={SLOTS}", f"--speed={speed:g}", "--engine=vllm", f"--model=model-{name}",
             f"--ready-file={ready}"], workdir / f"sim-{name}.log"))  # fmt: skip
        sim = wait_for(lambda r=ready: json.loads(r.read_text())["sims"][0], f"sim {name}")
        gpus.append({"name": name, "url": sim["url"], "sidecar_url": sim["sidecar_url"],
                     "engine": "vllm", "model": f"model-{name}", "slots": SLOTS,
                     "vram_total_mb": 24576})  # fmt: skip
    fleet = workdir / "fleet.yaml"
    fleet.write_text(yaml.safe_dump({"gpus": gpus, "routes": {"default": ["a", "b"]}}))
    port = free_port()
    env = {"SMARTQUEUE_REDIS_URL": f"redis://{LOOPBACK}:{redis_port}/0",
           "SMARTQUEUE_FLEET": str(fleet), "SMARTQUEUE_BLOB_DIR": str(workdir / "blobs"),
           "SMARTQUEUE_QUEUE_OPEN_DEPTH": "100000", "SMARTQUEUE_CEILING_LOW": "100000",
           "SMARTQUEUE_CEILING_NORMAL": "100000", "SMARTQUEUE_CEILING_HIGH": "100000",
           "SMARTQUEUE_QUEUE_MAX_DEPTH": "100000",
           "SMARTQUEUE_QUEUE_OVERLOAD_DEPTH": "100000", "SMARTQUEUE_QUEUE_WARN_DEPTH": "100000",
           "SMARTQUEUE_PROBE_INTERVAL_S": "0.5"}  # fmt: skip
    stack.enter_context(process([sys.executable, "-m", "smartqueue", "serve", "--host", LOOPBACK,
                                 "--port", str(port), "--log-level", "warning"],
                                workdir / "smartqueue.log", env))  # fmt: skip
    url = f"http://{LOOPBACK}:{port}"
    wait_for(lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200, "smartqueue")
    time.sleep(1.0)  # the first probes reach both sims
    return url


async def service_time_s(sim_url: str, samples: int = 8) -> float:
    """Mean time of one request sent straight to an idle sim (its own model name: vLLM)."""
    async with httpx.AsyncClient(base_url=sim_url, timeout=60) as client:
        times = []
        for _ in range(samples):
            started = time.monotonic()
            body = {**CHAT, "model": "model-a"}
            (await client.post("/v1/chat/completions", json=body)).raise_for_status()
            times.append(time.monotonic() - started)
    return statistics.mean(times)


async def interactive_load(url: str, *, rate_per_s: float, seconds: float) -> list[float]:
    """Poisson arrivals through the front door for `seconds`; every request's latency."""
    latencies: list[float] = []
    rng = random.Random(7)

    async def one(client: httpx.AsyncClient) -> None:
        started = time.monotonic()
        response = await client.post("/v1/chat/completions", json=CHAT,
                                     headers={"X-Syslog-Priority": "normal"})  # fmt: skip
        response.raise_for_status()
        latencies.append(time.monotonic() - started)

    async with httpx.AsyncClient(base_url=url, timeout=120) as client, asyncio.TaskGroup() as tg:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            tg.create_task(one(client))
            await asyncio.sleep(rng.expovariate(rate_per_s))
    return latencies


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def start_batch(client: openai.AsyncOpenAI, lines: int) -> str:
    """Upload and start a batch of `lines` chat requests; its id."""
    rows = [{"custom_id": f"b{i}", "method": "POST", "url": "/v1/chat/completions", "body": CHAT}
            for i in range(lines)]  # fmt: skip
    data = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    uploaded = await client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    batch = await client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return batch.id


async def batch_done(client: openai.AsyncOpenAI, batch_id: str) -> int:
    """Requests of the batch that ended so far."""
    counts = (await client.batches.retrieve(batch_id)).request_counts
    return counts.completed + counts.failed if counts else 0


async def measure(url: str, *, lines: int, seconds: float) -> dict[str, float]:
    """The three measurements; figures by name."""
    capacity_per_s = 2 * SLOTS / await service_time_s(await sim_url(url))
    rate = capacity_per_s / 2
    alone = await interactive_load(url, rate_per_s=rate, seconds=seconds)
    client = openai.AsyncOpenAI(api_key="bench", base_url=f"{url}/v1", max_retries=0)
    batch_id = await start_batch(client, lines)
    await asyncio.sleep(3.0)  # the batch fills the idle slots
    before, started = await batch_done(client, batch_id), time.monotonic()
    mixed = await interactive_load(url, rate_per_s=rate, seconds=seconds)
    batch_rate = (await batch_done(client, batch_id) - before) / (time.monotonic() - started)
    await client.batches.cancel(batch_id)
    interactive_rate = len(mixed) / seconds
    return {
        "capacity_per_s": capacity_per_s, "interactive_rate_per_s": interactive_rate,
        "p50_alone_s": percentile(alone, 50), "p99_alone_s": percentile(alone, 99),
        "p50_with_batch_s": percentile(mixed, 50), "p99_with_batch_s": percentile(mixed, 99),
        "batch_per_s": batch_rate,
        "batch_share_of_idle": batch_rate / max(capacity_per_s - interactive_rate, 1e-9),
        "service_time_s": 2 * SLOTS / capacity_per_s, "requests_alone": len(alone),
        "requests_with_batch": len(mixed),
    }  # fmt: skip


async def sim_url(url: str) -> str:
    """The first GPU's URL, as smartqueue lists it."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        gpus = (await client.get("/gpus")).json()["gpus"]
    return str(gpus[0]["url"])


def main() -> None:
    """Run the benchmark once and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--speed", type=float, default=4.0, help="sim speed (higher: faster)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sq-bench-batch-") as tmp, ExitStack() as stack:
        url = start_stack(stack, Path(tmp), speed=args.speed)
        figures = asyncio.run(measure(url, lines=args.lines, seconds=args.seconds))
    print(
        f"fleet: 2 sim GPUs x {SLOTS} slots, {figures['service_time_s']:.2f} s per request "
        f"-> capacity {figures['capacity_per_s']:.1f} req/s; interactive load "
        f"{figures['interactive_rate_per_s']:.1f} req/s (Poisson, half the capacity)"
    )
    print(
        f"interactive alone:        p50 {figures['p50_alone_s']:.3f} s  "
        f"p99 {figures['p99_alone_s']:.3f} s  ({figures['requests_alone']:g} requests)"
    )
    print(
        f"interactive + {args.lines}-line batch: p50 {figures['p50_with_batch_s']:.3f} s  "
        f"p99 {figures['p99_with_batch_s']:.3f} s  ({figures['requests_with_batch']:g} requests)"
    )
    print(
        f"batch throughput: {figures['batch_per_s']:.2f} req/s = "
        f"{figures['batch_share_of_idle']:.0%} of the idle capacity "
        f"({figures['capacity_per_s'] - figures['interactive_rate_per_s']:.2f} req/s)"
    )


if __name__ == "__main__":
    main()
