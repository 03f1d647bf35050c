"""Benchmark 1: `POST /enqueue` vs a bare FastAPI endpoint vs a redis-py EVALSHA floor.

Throughput with wrk (closed loop, pinned to the load core), latency at half of each server's own
max rate with the open-loop driver, and Redis commands per enqueue from INFO commandstats.
The service runs without consumers and with backpressure thresholds raised, so the queue only
grows and no dispatch work competes with admission.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx

from bench import redis_probe
from bench.config import BenchConfig
from bench.fleets import heterogeneous, start_fleet
from bench.httpload import chat_body, open_loop, raw_request, run_wrk, write_wrk_script
from bench.procs import NO_BACKPRESSURE, SERVICE_CPU, Processes, pinned
from bench.stats import Bar, Section, percentile

HEADERS = {"X-Syslog-Model": "default"}
TARGETS = ("bare", "smartqueue")


def run(config: BenchConfig) -> Section:
    """Start Redis, one sim, smartqueue (no consumers) and the bare app; measure in rounds."""
    section = Section("Enqueue: POST /enqueue vs a bare FastAPI endpoint")
    with Processes(config.workdir / "enqueue") as procs:
        redis_url = procs.redis()
        fleet, _ = start_fleet(procs, heterogeneous(), speed=1000)
        env = {**NO_BACKPRESSURE, "SMARTQUEUE_CONSUMERS": "0", "SMARTQUEUE_KEY_PREFIX": "bq"}
        urls = {
            "smartqueue": procs.service(
                "smartqueue", redis_url=redis_url, fleet_file=fleet, env=env
            ),
            "bare": procs.bare_app(),
        }
        body = chat_body(config.payload_bytes)
        check_accepts(urls, body)
        with section.timed("throughput (wrk, EVALSHA floor)"):
            throughput(config, section, urls, body, redis_url=redis_url)
        with section.timed("latency at half load (open loop)"):
            half_load_latency(config, section, urls, body)
        with section.timed("Redis commands per enqueue"):
            commands_per_enqueue(config, section, urls["smartqueue"], body, redis_url=redis_url)
    section.bars += [
        Bar(
            "enqueue throughput >= 0.8x bare FastAPI",
            "throughput ratio smartqueue/bare",
            0.8,
            higher_is_better=True,
        ),
        Bar("enqueue p99 <= 10 ms at half load", "smartqueue p99 at half load", 10.0),
    ]
    section.notes.append(
        f"wrk -t1 -c{config.wrk_connections} -d{config.wrk_duration_s:g}s, {config.payload_bytes}-"
        "byte chat JSON with `X-Syslog-Model: default`; servers on core 0, wrk and Redis on core 1."
        " Fleet: the draft's deploy/fleet.local.yaml (3 GPUs, 8 routes); service with "
        "`SMARTQUEUE_CONSUMERS=0` and backpressure thresholds at 1e8."
    )
    return section


def check_accepts(urls: dict[str, str], body: bytes) -> None:
    """Fail early, with the answer, when a target does not accept a job."""
    for name, url in urls.items():
        response = httpx.post(f"{url}/enqueue", content=body, headers=HEADERS, timeout=5)
        if response.status_code != 202:
            raise RuntimeError(f"{name} answered {response.status_code}: {response.text[:300]}")


def throughput(
    config: BenchConfig, section: Section, urls: dict[str, str], body: bytes, *, redis_url: str
) -> None:
    """Interleaved rounds (bare, smartqueue, EVALSHA floor, ...) after a short warm-up of each."""
    script = write_wrk_script(config.workdir / "enqueue" / "post.lua", body)
    for url in urls.values():
        run_wrk(
            f"{url}/enqueue",
            script,
            duration_s=config.wrk_warmup_s,
            connections=config.wrk_connections,
        )
    for _ in range(config.rounds):
        for name in TARGETS:
            result = run_wrk(
                f"{urls[name]}/enqueue",
                script,
                duration_s=config.wrk_duration_s,
                connections=config.wrk_connections,
            )
            section.add(f"{name} throughput", "req/s", result.requests_per_s)
            section.add(f"{name} non-2xx or socket errors", "count", result.non_2xx + result.errors)
        section.add(
            "redis-py EVALSHA floor (HSET+XADD script)",
            "jobs/s",
            redis_floor(redis_url, config, len(body)),
        )
    section.ratio("throughput ratio smartqueue/bare", "smartqueue throughput", "bare throughput")


def redis_floor(redis_url: str, config: BenchConfig, payload_bytes: int) -> float:
    """Jobs/s of `bench.redis_floor` on the service core."""
    args = pinned(
        SERVICE_CPU,
        [
            sys.executable,
            "-m",
            "bench.redis_floor",
            "--url",
            redis_url,
            f"--duration-s={config.wrk_duration_s:g}",
            f"--concurrency={config.wrk_connections}",
            f"--payload-bytes={payload_bytes}",
        ],
    )
    output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return float(json.loads(output)["jobs_per_s"])


def half_load_latency(
    config: BenchConfig, section: Section, urls: dict[str, str], body: bytes
) -> None:
    """p50/p99 of each target at half of its own median max rate (open loop)."""
    for _ in range(config.rounds):
        for name in TARGETS:
            rate = section.figures[f"{name} throughput"].median / 2
            request = raw_request(f"{urls[name]}/enqueue", body, HEADERS)
            result = asyncio.run(
                open_loop(
                    urls[name], request, rate_per_s=rate, duration_s=config.open_loop_duration_s
                )
            )
            latencies_ms = [s * 1000 for s in result.latencies_s]
            section.add(f"{name} p50 at half load", "ms", percentile(latencies_ms, 50))
            section.add(f"{name} p99 at half load", "ms", percentile(latencies_ms, 99))
            section.add(f"{name} half-load rate", "req/s", rate)
            section.add(f"{name} failures at half load", "count", result.failures)


def commands_per_enqueue(
    config: BenchConfig, section: Section, url: str, body: bytes, *, redis_url: str
) -> None:
    """Redis commands per accepted job, idle background traffic subtracted; top commands noted."""
    connection = redis_probe.client(redis_url)
    idle_s = 2.0
    before = redis_probe.command_calls(connection)
    time.sleep(idle_s)
    idle_rate = (redis_probe.command_calls(connection) - before).total() / idle_s
    before, start = redis_probe.command_calls(connection), time.perf_counter()
    with httpx.Client(base_url=url, headers=HEADERS) as client:
        for _ in range(config.commands_sample):
            client.post("/enqueue", content=body).raise_for_status()
    elapsed = time.perf_counter() - start
    delta = redis_probe.command_calls(connection) - before
    per_job = (delta.total() - idle_rate * elapsed) / config.commands_sample
    section.add("Redis commands per enqueue (incl. inside Lua)", "commands", per_job)
    section.add("Redis commands/s of the idle service (no consumers)", "commands/s", idle_rate)
    top = ", ".join(
        f"{name} {calls / config.commands_sample:.1f}" for name, calls in delta.most_common(8)
    )
    section.notes.append(f"Commands per enqueue by name (idle traffic included): {top}.")
    connection.close()
