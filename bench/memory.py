"""Benchmark 4: Redis bytes per queued job vs payload size, and the service's resident memory.

Redis: `used_memory` before and after queueing N jobs (no consumers, so they stay queued), per
payload size, with and without the clients' buffers (`mem_clients_normal`: they belong to the
service's connections and swing by hundreds of bytes per job between rounds; the bar uses the
figure without them), and MEMORY USAGE of the keys named after a sample of those jobs (the job
record and any per-job key; a stream entry is not a key, so a payload kept in the stream shows
only in the deltas). Service RSS (VmRSS): idle, with N queued, and with every slot of the fleet
busy.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import redis

from bench import redis_probe
from bench.config import BenchConfig
from bench.httpload import chat_body, enqueue_many
from bench.procs import NO_BACKPRESSURE, Processes, gpu_entry, write_fleet
from bench.stats import Bar, Section

PAYLOADS = (128, 1024, 8192)
SLOTS = 4
MIB = 1024 * 1024


def run(config: BenchConfig) -> Section:
    """A queue-only service (no consumers) and a dispatching one in front of a slow sim."""
    section = Section("Memory: Redis bytes per queued job, service RSS")
    with Processes(config.workdir / "memory") as procs:
        redis_url = procs.redis()
        sim = procs.sim("gpu", slots=SLOTS, speed=1)
        fleet = write_fleet(
            procs.workdir / "fleet" / "fleet.yaml", [gpu_entry(sim, slots=SLOTS)], profiles={}
        )
        queue_env = {**NO_BACKPRESSURE, "SMARTQUEUE_CONSUMERS": "0", "SMARTQUEUE_KEY_PREFIX": "m"}
        queue = procs.service("queue-only", redis_url=redis_url, fleet_file=fleet, env=queue_env)
        time.sleep(2)
        section.add("service RSS idle", "MiB", procs.rss_bytes("queue-only") / MIB)
        connection = redis_probe.client(redis_url)
        for round_index in range(min(config.rounds, 3)):
            for size in PAYLOADS:
                per_job(section, connection, queue, size, config.memory_jobs)
                if round_index == 0 and size == PAYLOADS[0]:
                    rss = procs.rss_bytes("queue-only") / MIB
                    section.add(f"service RSS with {config.memory_jobs} queued", "MiB", rss)
        connection.close()
        with section.timed("RSS with every slot busy"):
            busy_rss(section, procs, redis_url, fleet)
    bar_figure = f"Redis bytes per queued job over the payload ({PAYLOADS[0]} B)"
    section.bars.append(Bar("Redis memory per queued job <= payload + 300 B", bar_figure, 300))
    section.notes.append(
        f"{config.memory_jobs} jobs per payload size and round through `POST /enqueue` (a chat "
        "JSON body of the stated size), service with `SMARTQUEUE_CONSUMERS=0`; one GPU route. "
        "RSS is VmRSS of the `smartqueue serve` process."
    )
    return section


def per_job(section: Section, connection: redis.Redis, url: str, size: int, count: int) -> None:
    """used_memory delta and MEMORY USAGE of the job keys, per job, for one payload size."""
    before = redis_probe.used_memory(connection), redis_probe.stored_memory(connection)
    ids = asyncio.run(enqueue_many(url, chat_body(size), count))
    delta = (redis_probe.used_memory(connection) - before[0]) / len(ids)
    stored = (redis_probe.stored_memory(connection) - before[1]) / len(ids)
    sample = ids[:: max(1, len(ids) // 20)]
    keys = sum(redis_probe.keys_bytes(connection, f"*{job_id}*") for job_id in sample)
    section.add(f"Redis bytes per queued job ({size} B payload, used_memory delta)", "B", delta)
    section.add(f"Redis bytes per queued job ({size} B payload, less client buffers)", "B", stored)
    section.add(f"Redis bytes per queued job over the payload ({size} B)", "B", stored - size)
    section.add(f"MEMORY USAGE of a job's own keys ({size} B payload)", "B", keys / len(sample))


def busy_rss(section: Section, procs: Processes, redis_url: str, fleet: Path) -> None:
    """RSS of a dispatching service while every slot runs a long job (and more wait)."""
    env = {**NO_BACKPRESSURE, "SMARTQUEUE_KEY_PREFIX": "busy"}
    url = procs.service("dispatching", redis_url=redis_url, fleet_file=fleet, env=env)
    body = chat_body(256, max_tokens=4000)
    asyncio.run(enqueue_many(url, body, SLOTS * 3))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        overview = httpx.get(f"{url}/status", timeout=5).json()
        if overview["in_flight"] >= SLOTS:
            break
        time.sleep(0.2)
    time.sleep(1)
    section.add("service RSS with every slot busy", "MiB", procs.rss_bytes("dispatching") / MIB)
