"""The floor under `POST /enqueue`: a redis-py EVALSHA loop, one script call per job, no HTTP.

`python -m bench.redis_floor --url redis://... --duration-s 5` prints jobs per second as JSON.
The script writes what an enqueue must write at least (a stream entry and a job record), called
with as many concurrent tasks as wrk has connections, from one process on the service's core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import redis.asyncio as redis

PREFIX = "floor"
ENQUEUE_SCRIPT = """
local stream_key = KEYS[1]
local job_key = KEYS[2]
local job_id = ARGV[1]
local payload = ARGV[2]
redis.call('HSET', job_key, 'payload', payload, 'status', 'queued')
return redis.call('XADD', stream_key, '*', 'job', job_id)
"""


async def _worker(
    client: redis.Redis, sha: str, payload: bytes, deadline: float, done: list[int]
) -> None:
    while time.perf_counter() < deadline:
        job_id = uuid.uuid4().hex
        keys = (f"{PREFIX}:q", f"{PREFIX}:job:{job_id}")
        await client.evalsha(sha, 2, *keys, job_id, payload)
        done[0] += 1


async def measure(url: str, *, duration_s: float, concurrency: int, payload: bytes) -> float:
    """Jobs written per second by `concurrency` tasks over `duration_s`."""
    client = redis.Redis.from_url(url, max_connections=concurrency)
    sha = await client.script_load(ENQUEUE_SCRIPT)
    done = [0]
    start = time.perf_counter()
    deadline = start + duration_s
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(_worker(client, sha, payload, deadline, done))
    elapsed = time.perf_counter() - start
    await client.delete(f"{PREFIX}:q")
    await client.aclose()
    return done[0] / elapsed


def main() -> None:
    """Measure and print `{"jobs_per_s": ...}`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--payload-bytes", type=int, default=128)
    options = parser.parse_args()
    payload = b"x" * options.payload_bytes
    rate = asyncio.run(
        measure(
            options.url,
            duration_s=options.duration_s,
            concurrency=options.concurrency,
            payload=payload,
        )
    )
    print(json.dumps({"jobs_per_s": rate}))


if __name__ == "__main__":
    main()
