"""The speed book against a real redis-server: samples teach this replica at once and reach the
statistics the replicas share at the next sync, without one round trip per job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from smartqueue.config import Settings
from smartqueue.errors import StoreUnavailable
from smartqueue.planner import SAMPLE_DECAY, Sample, SpeedStats
from smartqueue.speed_book import SpeedBook
from smartqueue.store import Store
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

GPUS = ["fast", "other"]
FAST = [Sample(0, tokens, 0.01 + 0.001 * tokens, None) for tokens in (16, 64, 128, 256, 32)]


@pytest.fixture
async def store(redis_server: RedisServer, key_prefix: str) -> AsyncIterator[Store]:
    """A store on the test server with its own prefix."""
    store = Store.connect(Settings(redis_url=redis_server.url, key_prefix=key_prefix),
                          routes=["default"])  # fmt: skip
    yield store
    await store.aclose()


def book(store: Store) -> SpeedBook:
    """A replica's speed book that syncs only when told to (refresh an hour)."""
    return SpeedBook(store, GPUS, refresh_s=3600)


async def stored_weight(store: Store, gpu: str) -> float:
    """The decayed weight of the answer samples stored for `gpu`."""
    fields = (await store.speeds.read([gpu]))[gpu]
    return SpeedStats.from_fields(fields).answer.weight


def weight_of(count: int) -> float:
    """The decayed weight of `count` samples."""
    return sum(SAMPLE_DECAY**age for age in range(count))


async def test_learnt_samples_teach_this_replica_at_once_and_the_others_at_the_next_sync(
    store: Store,
) -> None:
    mine, theirs = book(store), book(store)
    await mine.sync()

    for sample in FAST:
        mine.learn("fast", sample, now=1.0)

    assert (await mine.speeds())["fast"].decode_s_per_token == pytest.approx(0.001, rel=0.01)
    assert await stored_weight(store, "fast") == 0, "no round trip per sample"
    await mine.sync()
    assert await stored_weight(store, "fast") == pytest.approx(weight_of(len(FAST)))
    assert (await theirs.speeds())["fast"] == (await mine.speeds())["fast"]


async def test_two_replicas_samples_add_up_in_the_shared_statistics(store: Store) -> None:
    first, second = book(store), book(store)
    for sample in FAST[:3]:
        first.learn("fast", sample, now=1.0)
    for sample in FAST[3:]:
        second.learn("fast", sample, now=2.0)

    await first.sync()
    await second.sync()

    assert await stored_weight(store, "fast") == pytest.approx(weight_of(len(FAST)))
    assert await stored_weight(store, "other") == 0


async def test_samples_stay_for_the_next_sync_when_the_write_fails(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = book(store)
    for sample in FAST:
        mine.learn("fast", sample, now=1.0)
    write = store.speeds.write

    async def unavailable(*_: object, **__: object) -> None:
        raise StoreUnavailable()

    monkeypatch.setattr(store.speeds, "write", unavailable)
    with pytest.raises(StoreUnavailable):
        await mine.sync()
    monkeypatch.setattr(store.speeds, "write", write)
    mine.learn("fast", FAST[0], now=2.0)
    await mine.sync()

    assert await stored_weight(store, "fast") == pytest.approx(weight_of(len(FAST) + 1))


async def test_a_sample_learnt_while_the_write_is_under_way_still_counts_here(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = book(store)
    for sample in FAST[:3]:
        mine.learn("fast", sample, now=1.0)
    write = store.speeds.write

    async def learning_meanwhile(*args: Any, **kwargs: Any) -> None:
        mine.learn("fast", FAST[3], now=2.0)
        await write(*args, **kwargs)

    monkeypatch.setattr(store.speeds, "write", learning_meanwhile)
    await mine.sync()

    assert (await mine.speeds())["fast"].samples == pytest.approx(weight_of(4))
    assert await stored_weight(store, "fast") == pytest.approx(weight_of(3)), "shared next time"


async def test_run_shares_samples_every_refresh_and_outlives_a_failed_sync(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, stopping = SpeedBook(store, GPUS, refresh_s=0.02), asyncio.Event()
    write, writes = store.speeds.write, []

    async def failing_once(*args: Any, **kwargs: Any) -> None:
        writes.append(args)
        if len(writes) == 1:
            raise StoreUnavailable()
        await write(*args, **kwargs)

    monkeypatch.setattr(store.speeds, "write", failing_once)
    running = asyncio.create_task(mine.run(stopping))
    mine.learn("fast", FAST[0], now=1.0)

    async def shared() -> float | None:
        weight = await stored_weight(store, "fast")
        return weight or None

    weight = await wait_until(shared, timeout_s=10, what="the sample shared by run()")
    stopping.set()
    await asyncio.wait_for(running, timeout=5)

    assert weight == pytest.approx(1.0)
    assert len(writes) >= 2, "the failed sync was retried"
