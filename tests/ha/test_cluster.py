"""Redis Cluster: the engine's core scenarios on three real primaries, and a slot migration.

Every key of a deployment carries the hash tag `{<prefix>}`, so the whole queue lives in one
slot: the scripts run as on one Redis, and a deployment moved to another node (MOVED) goes on.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from smartqueue.batches import StoredFile
from smartqueue.config import Settings
from smartqueue.errors import OutcomeUnknown
from smartqueue.models import Priority, new_job_id
from smartqueue.queue import Lease, NewJob
from smartqueue.store import Store
from smartqueue.store.files import Deletion
from smartqueue.store.keys import Keys
from tests.engine.conftest import (
    dlq_entries,
    fleet_for,
    running_store,
    service,
    sims,
    submit,
    wait_gpus_down,
    wait_status,
    wait_terminal,
)
from tests.ha.load import settle, steady_load
from tests.support.redis_ha import RedisClusterProcesses, migrate_slot, redis_cluster
from tests.support.sim import InProcessSim
from tests.support.waiting import wait_until

__all__ = ["sims"]  # in-process sims: the engine runs in-process here

ENDED = {"completed", "dead"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """Three primaries for the module; tests keep apart by key prefix (each its own slot)."""
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as processes:
        yield processes


@pytest.fixture
def cluster_settings(
    cluster: RedisClusterProcesses, engine_settings: Callable[..., Settings]
) -> Callable[..., Settings]:
    """Engine test settings on the cluster."""
    return functools.partial(engine_settings, redis_url=cluster.url)


async def test_cluster_jobs_complete_retry_and_dead_letter_as_on_one_redis(
    sims: Callable[..., dict[str, InProcessSim]], cluster_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 2})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})
    async with service(cluster_settings(max_retries=1), fleet) as client:
        done = await wait_terminal(client, [await submit(client) for _ in range(6)])
        gpus["a"].set_faults("error")
        failing = await submit(client)
        dead = await wait_status(client, failing, ENDED)
        [entry] = await dlq_entries(client)
        gpus["a"].set_faults("none")
        retried = await client.post(f"/dlq/{entry['id']}/retry",
                                    headers={"Authorization": "Bearer t"})  # fmt: skip
        again = await wait_status(client, retried.json()["job_id"], ENDED)

    assert {record["status"] for record in done.values()} == {"completed"}
    assert (dead["status"], dead["reason"], dead["attempts"]) == ("dead", "retries_exhausted", 2)
    assert entry["job_id"] == failing
    assert again["status"] == "completed"


async def _take(store: Store, consumer: str) -> bool:
    lease = Lease(lease_ms=200, aging_ms=30_000)
    taken = await store.claims.take("a", slots=1, routes=["default"], consumer=consumer,
                                    lease=lease)  # fmt: skip
    return taken is not None


async def test_cluster_job_of_a_consumer_that_died_is_reclaimed_and_completes(
    sims: Callable[..., dict[str, InProcessSim]], cluster_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    gpus["a"].set_faults("refuse")  # the service's consumers leave the job to the doomed one
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    settings = cluster_settings(claim_idle_s=0.3)
    async with service(settings, fleet) as client, running_store(settings, fleet) as store:
        await wait_gpus_down(client, ["a"])
        job_id = await submit(client)
        await wait_until(functools.partial(_take, store, "doomed"), timeout_s=10,
                         what="the doomed consumer's take")  # fmt: skip
        gpus["a"].set_faults("none")
        record = await wait_status(client, job_id, ENDED)

    assert record["status"] == "completed"
    assert gpus["a"].stats()["requests_by_job"] == {job_id: 1}


async def test_cluster_deployment_slot_migrated_mid_run_follows_moved_and_loses_nothing(
    sims: Callable[..., dict[str, InProcessSim]],
    cluster_settings: Callable[..., Settings],
    cluster: RedisClusterProcesses,
    key_prefix: str,
) -> None:
    gpu = sims(a={"slots": 4})["a"]
    fleet = fleet_for({"a": gpu}, {"default": ["a"]}, {"a": 4})
    slot = key_slot(Keys(key_prefix).tag.encode())
    source = cluster.node_of_slot(slot)
    target = next(node for node in cluster.nodes if node is not source)
    async with service(cluster_settings(), fleet) as client:
        async with steady_load(client) as load:
            await wait_until(lambda: _accepted(load.accepted), timeout_s=10, what="202s")
            moved = await asyncio.to_thread(migrate_slot, cluster, slot, target)
            after = len(load.accepted)
            await wait_until(lambda: _accepted(load.accepted, more_than=after + 20),
                             timeout_s=20, what="20 more 202s after the migration")  # fmt: skip
        figures = await settle(client, load, gpu)

    print(figures.line(f"cluster slot {slot} migrated mid-run ({moved} keys, MOVED after)"))
    assert cluster.node_of_slot(slot) is target
    assert moved > 0
    assert figures.lost == 0
    assert figures.completed == figures.accepted


async def _accepted(accepted: dict[str, float], *, more_than: int = 10) -> bool:
    return len(accepted) > more_than


async def _first(notifications: AsyncIterator[str]) -> str:
    async for job_id in notifications:
        return job_id
    raise AssertionError("the notifications ended")


async def test_cluster_job_end_published_on_another_node_reaches_the_subscriber(
    cluster: RedisClusterProcesses, cluster_settings: Callable[..., Settings], key_prefix: str
) -> None:
    store = Store.connect(cluster_settings(), routes=["default"])
    slot = key_slot(Keys(key_prefix).tag.encode())
    elsewhere = next(node for node in cluster.nodes if node is not cluster.node_of_slot(slot))
    try:
        first = asyncio.create_task(_first(store.events.done_notifications()))
        async with aioredis.Redis(port=elsewhere.port) as publisher:

            async def delivered() -> bool:
                await publisher.publish(store.keys.done_channel, "job-1")
                return first.done()

            await wait_until(delivered, timeout_s=10, what="the notification", interval_s=0.1)
        received = await first
    finally:
        await store.aclose()

    assert received == "job-1"


async def test_cluster_without_replicas_answers_outcome_unknown_when_min_replicas_is_set(
    cluster_settings: Callable[..., Settings],
) -> None:
    store = Store.connect(cluster_settings(redis_min_replicas=1), routes=["default"])
    job = NewJob(job_id=new_job_id(), route="default", priority=Priority.NORMAL,
                 payload=b"{}", headers={}, created_at=time.time())  # fmt: skip
    try:
        await store.ensure_groups()
        with pytest.raises(OutcomeUnknown) as unconfirmed:  # a fresh client: the slot map first
            await store.submissions.enqueue(job, ceiling=40, everywhere_ceiling=1000)
        record = await store.jobs.get(job.job_id)
    finally:
        await store.aclose()

    assert unconfirmed.value.job_id == job.job_id
    assert record is not None, "written on the slot's node, only not confirmed by a replica"


async def test_cluster_transactions_of_the_files_api_run_in_the_deployments_slot(
    cluster_settings: Callable[..., Settings],
) -> None:
    store = Store.connect(cluster_settings(), routes=["default"])
    file = StoredFile(id="file-1", owner="o", bytes=3, created_at=1, filename="in.jsonl",
                      purpose="batch")  # fmt: skip
    try:
        await store.files.add(file, now=1.0)  # MULTI
        listed = await store.files.ids("o")
        deleted = await store.files.delete(file)  # WATCH, then MULTI
        gone = await store.files.get(file.id)
    finally:
        await store.aclose()

    assert listed == ["file-1"]
    assert deleted is Deletion.DELETED
    assert gone is None
