"""Benchmark 5: one replica vs two replicas sharing one Redis.

Enqueue throughput: wrk against one replica (core 0) vs two wrk processes at once against two
replicas (core 0 and core 1) with the same key prefix, half the connections each; no consumers.
Dispatch throughput: jobs submitted through `POST /enqueue` to a fast sim with many slots, from
the first submission until the queue is empty and nothing is in flight, with 1 vs 2 replicas
consuming (default consumers: one per slot).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import httpx

from bench.config import BenchConfig
from bench.fleets import heterogeneous, start_fleet
from bench.httpload import chat_body, enqueue_many, parse_wrk, write_wrk_script, wrk_args
from bench.procs import LOAD_CPU, NO_BACKPRESSURE, SERVICE_CPU, Processes, gpu_entry, write_fleet
from bench.stats import Section

DISPATCH_SLOTS = 32


def run(config: BenchConfig) -> Section:
    """Enqueue throughput, then dispatch throughput, each 1 vs 2 replicas in interleaved rounds."""
    section = Section("Replicas: 1 vs 2 (same Redis)")
    with section.timed("enqueue, 1 vs 2 replicas"):
        enqueue_throughput(config, section)
    with section.timed("dispatch, 1 vs 2 replicas"):
        dispatch_throughput(config, section)
    section.ratio("enqueue throughput ratio 2/1", "enqueue, 2 replicas", "enqueue, 1 replica")
    section.ratio("dispatch throughput ratio 2/1", "dispatch, 2 replicas", "dispatch, 1 replica")
    section.notes.append(
        "Two cores only: replica 1 runs on core 0, replica 2 on core 1 with wrk, Redis and the "
        "sims, so the second replica competes with the load generator; read the ratio as an "
        f"upper bound of the cost of coordination, not as scaling. Dispatch: {DISPATCH_SLOTS}-slot "
        "sim at --speed 1000, 8 output tokens."
    )
    return section


def replicas(
    procs: Processes, prefix: str, env: dict[str, str], redis_url: str, fleet: Path
) -> dict[str, list[str]]:
    """A solo replica and a pair (another prefix), started side by side; their URLs."""
    solo = {"solo": (SERVICE_CPU, f"{prefix}1")}
    pair = {f"pair-{cpu}": (cpu, f"{prefix}2") for cpu in (SERVICE_CPU, LOAD_CPU)}
    urls = {
        name: procs.service(
            name,
            redis_url=redis_url,
            fleet_file=fleet,
            cpu=cpu,
            env={**env, "SMARTQUEUE_KEY_PREFIX": key_prefix},
            wait=False,
        )
        for name, (cpu, key_prefix) in {**solo, **pair}.items()
    }
    for name, url in urls.items():
        procs.wait_healthy(name, url)
    return {"1 replica": [urls["solo"]], "2 replicas": [urls[name] for name in pair]}


def enqueue_throughput(config: BenchConfig, section: Section) -> None:
    """wrk on the solo replica vs two wrk at once on the pair."""
    with Processes(config.workdir / "replicas-enqueue") as procs:
        redis_url = procs.redis()
        fleet, _ = start_fleet(procs, heterogeneous(), speed=1000)
        env = {**NO_BACKPRESSURE, "SMARTQUEUE_CONSUMERS": "0"}
        groups = replicas(procs, "re", env, redis_url, fleet)
        script = write_wrk_script(procs.workdir / "post.lua", chat_body(config.payload_bytes))
        for _ in range(config.rounds):
            for label, urls in groups.items():
                per = config.wrk_connections // len(urls)
                runs = [
                    subprocess.Popen(
                        wrk_args(
                            f"{url}/enqueue",
                            script,
                            duration_s=config.wrk_duration_s,
                            connections=per,
                        ),
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    for url in urls
                ]
                rates = [parse_wrk(run.communicate()[0]).requests_per_s for run in runs]
                section.add(f"enqueue, {label}", "req/s", sum(rates))


def dispatch_throughput(config: BenchConfig, section: Section) -> None:
    """Jobs/s from first submission to an empty queue, solo vs pair."""
    with Processes(config.workdir / "replicas-dispatch") as procs:
        redis_url = procs.redis()
        sim = procs.sim("gpu", slots=DISPATCH_SLOTS, speed=1000)
        fleet = write_fleet(
            procs.workdir / "fleet" / "fleet.yaml",
            [gpu_entry(sim, slots=DISPATCH_SLOTS)],
            profiles={},
        )
        groups = replicas(procs, "rd", dict(NO_BACKPRESSURE), redis_url, fleet)
        body = chat_body(config.payload_bytes, max_tokens=8)
        count = config.commands_sample * 2
        for _ in range(config.rounds):
            for label, urls in groups.items():
                section.add(f"dispatch, {label}", "jobs/s", asyncio.run(drain(urls, body, count)))


async def drain(urls: list[str], body: bytes, count: int) -> float:
    """Submit `count` jobs spread over `urls`, wait until all ran; jobs per second."""
    started = time.perf_counter()
    share = count // len(urls)
    await asyncio.gather(*(enqueue_many(url, body, share) for url in urls))
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            overview = (await client.get(f"{urls[0]}/status")).json()
            if not (overview["depth"]["total"] or overview["in_flight"] or overview["delayed"]):
                break
            await asyncio.sleep(0.02)
    return share * len(urls) / (time.perf_counter() - started)
