"""Batches survive crashes: every custom_id exactly once in the output or error file after a
replica's kill -9, or after Redis is killed and restarted on its AOF."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from smartqueue.config import Settings
from tests.batch.conftest import chat_line, jsonl, lines_of, openai_client, upload, wait_batch
from tests.batch.test_batches import wait_until_counted
from tests.chaos.conftest import (  # noqa: F401  (fixtures: replicas, sims as processes)
    StartReplicas,
    client_of,
    replicas,
    sims,
)
from tests.engine.conftest import fleet_for
from tests.support.redis_server import RedisServer
from tests.support.sim import SimHandle

LINES = 40


def chaos_settings(make: Callable[..., Settings], blob_dir: Path, **overrides: object) -> Settings:
    """Quick heartbeats, leases and reclaims (a crash heals fast), one shared blob directory."""
    return make(heartbeat_interval_s=0.2, consumer_ttl_s=1.5, lease_s=2.0, claim_idle_s=2.0,
                blob_dir=blob_dir, **overrides)  # fmt: skip


async def test_batch_replica_kill9_mid_batch_still_answers_every_custom_id_once(
    sims: Callable[..., dict[str, SimHandle]], engine_settings: Callable[..., Settings],  # noqa: F811
    replicas: StartReplicas, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    gpus = sims(a={"slots": 2, "speed": 10.0})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})
    settings = chaos_settings(engine_settings, tmp_path / "shared-blobs")
    first, second = replicas(settings, fleet, 2)
    custom_ids = [f"k{i}" for i in range(LINES)]

    async with client_of(first) as one, client_of(second) as two:
        doomed = openai_client(one, base_url=first.url)
        survivor = openai_client(two, base_url=second.url)
        created = await doomed.batches.create(
            input_file_id=await upload(doomed, jsonl([chat_line(c) for c in custom_ids])),
            endpoint="/v1/chat/completions", completion_window="24h",
        )  # fmt: skip
        await wait_until_counted(survivor, created.id, at_least=5)
        first.kill9()
        batch = await wait_batch(survivor, created.id, timeout_s=90)
        lines = await lines_of(survivor, batch.output_file_id)
        lines += await lines_of(survivor, batch.error_file_id)

    answered = sorted(line["custom_id"] for line in lines)
    print(f"replica kill -9 mid-batch: {batch.status}, {len(answered)} lines for "
          f"{LINES} custom_ids, counts {batch.request_counts}")  # fmt: skip
    assert batch.status == "completed"
    assert answered == sorted(custom_ids)


async def test_batch_redis_kill9_and_aof_restart_still_answers_every_custom_id_once(
    sims: Callable[..., dict[str, SimHandle]], engine_settings: Callable[..., Settings],  # noqa: F811
    replicas: StartReplicas, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    redis = RedisServer(tmp_path / "redis-aof", appendonly=True)
    redis.workdir.mkdir()
    redis.start()
    try:
        gpus = sims(a={"slots": 2, "speed": 10.0})
        fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})
        settings = chaos_settings(engine_settings, tmp_path / "blobs", redis_url=redis.url)
        [replica] = replicas(settings, fleet, 1)
        custom_ids = [f"r{i}" for i in range(LINES)]
        async with client_of(replica) as http:
            client = openai_client(http, base_url=replica.url)
            created = await client.batches.create(
                input_file_id=await upload(client, jsonl([chat_line(c) for c in custom_ids])),
                endpoint="/v1/chat/completions", completion_window="24h",
            )  # fmt: skip
            await wait_until_counted(client, created.id, at_least=5)
            redis.kill()
            redis.start()
            batch = await wait_batch(client, created.id, timeout_s=90)
            lines = await lines_of(client, batch.output_file_id)
            lines += await lines_of(client, batch.error_file_id)
    finally:
        redis.stop()

    answered = sorted(line["custom_id"] for line in lines)
    print(f"redis kill -9 + AOF restart mid-batch: {batch.status}, {len(answered)} lines for "
          f"{LINES} custom_ids, counts {batch.request_counts}")  # fmt: skip
    assert batch.status == "completed"
    assert answered == sorted(custom_ids)
