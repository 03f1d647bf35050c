"""A server without the scripts (flushed, restarted, a promoted replica) answers NOSCRIPT; the
store loads them again and the call goes through, in the WAIT pipeline as elsewhere."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from smartqueue.config import Settings
from smartqueue.errors import OutcomeUnknown
from smartqueue.models import Priority, new_job_id
from smartqueue.queue import Lease, NewJob
from smartqueue.store import Store
from tests.support.redis_ha import wait_replicating
from tests.support.redis_server import RedisServer

LEASE = Lease(lease_ms=30_000, aging_ms=30_000)


def _job() -> NewJob:
    return NewJob(job_id=new_job_id(), route="default", priority=Priority.NORMAL,
                  payload=b"{}", headers={}, created_at=time.time())  # fmt: skip


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and its synced replica (no sentinels)."""
    primary = RedisServer(tmp_path / "primary")
    primary.workdir.mkdir()
    primary.start()
    replica = RedisServer(tmp_path / "replica",
                          extra_args=["--replicaof", "127.0.0.1", str(primary.port)])  # fmt: skip
    replica.workdir.mkdir()
    replica.start()
    try:
        wait_replicating(replica)
        with redis.Redis(port=primary.port) as client:
            client.set("synced", 1)
            assert client.wait(1, 10_000) == 1
        yield primary, replica
    finally:
        replica.kill()
        primary.kill()


async def _enqueue(store: Store) -> str | None:
    admission = await store.submissions.enqueue(_job(), ceiling=40, everywhere_ceiling=1000)
    return admission.job_id


async def test_scripts_flushed_are_reloaded_for_enqueue_with_wait_and_for_take(
    pair: tuple[RedisServer, RedisServer], key_prefix: str
) -> None:
    primary, _ = pair
    settings = Settings(redis_url=primary.url, key_prefix=key_prefix, redis_min_replicas=1)
    store = Store.connect(settings, routes=["default"])
    try:
        await store.ensure_groups()
        first = await _enqueue(store)
        await store.redis.script_flush()
        second = await _enqueue(store)  # EVALSHA + WAIT pipeline: NOSCRIPT, load, again
        await store.redis.script_flush()
        taken = await store.claims.take("a", slots=2, routes=["default"], consumer="c",
                                        lease=LEASE)  # fmt: skip
    finally:
        await store.aclose()

    assert first
    assert second
    assert taken is not None
    assert taken.job_id == first


async def test_promoted_replica_without_scripts_takes_the_jobs_written_before(
    pair: tuple[RedisServer, RedisServer], key_prefix: str
) -> None:
    primary, replica = pair
    before = Store.connect(Settings(redis_url=primary.url, key_prefix=key_prefix,
                                    redis_min_replicas=1), routes=["default"])  # fmt: skip
    try:
        await before.ensure_groups()
        job_id = await _enqueue(before)
    finally:
        await before.aclose()
    primary.kill()
    with redis.Redis(port=replica.port) as client:
        client.execute_command("REPLICAOF", "NO", "ONE")
    after = Store.connect(Settings(redis_url=replica.url, key_prefix=key_prefix,
                                   redis_min_replicas=1), routes=["default"])  # fmt: skip
    try:
        taken = await after.claims.take("a", slots=2, routes=["default"], consumer="c",
                                        lease=LEASE)  # fmt: skip
        with pytest.raises(OutcomeUnknown) as unconfirmed:  # no replica left to confirm
            await _enqueue(after)
    finally:
        await after.aclose()

    assert taken is not None
    assert taken.job_id == job_id
    assert unconfirmed.value.status_code == 503
