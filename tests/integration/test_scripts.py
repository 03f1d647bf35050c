"""The Lua scripts on their own, against a real redis-server: every key declared, the lifecycle
guard, ownership of an entry, and TAKE's re-read of the breaker."""

from __future__ import annotations

import re
import time
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from smartqueue.models import JobStatus, Priority
from smartqueue.store import scripts
from smartqueue.store.keys import GROUP, Counter, Keys
from smartqueue.store.scripts import NAMES, Change, Held, Scripts, load_source
from tests.support.redis_server import RedisServer

# A key argument of redis.call built by concatenation, or a key name taken apart.
KEY_BUILDING = re.compile(r"redis\.call\('\w+',\s*[^,)]*\.\.|string\.match\(\s*(record|key)")


@pytest.fixture
def runner(redis_client: aioredis.Redis) -> Scripts:
    """Every script, registered on the test server."""
    return Scripts(redis_client)


@pytest.mark.parametrize("name", NAMES)
def test_script_builds_no_key_name_inside_redis(name: str) -> None:
    source = load_source(name)
    assert not KEY_BUILDING.search(source), f"{name}.lua builds or parses a key name"


@pytest.mark.parametrize("name", NAMES)
def test_script_opens_with_named_locals_for_its_inputs(name: str) -> None:
    body = load_source(name).split("\n")
    own = body[body.index(next(line for line in body if line.startswith("-- ") and
                                not line.startswith("-- needs")
                                and load_source(name).count(line) == 1)):]  # fmt: skip
    uses = [line for line in own if re.search(r"(KEYS|ARGV)\[\d+\]", line)]
    assert all(line.startswith("local ") for line in uses), uses


async def _record(client: aioredis.Redis, keys: Keys, job_id: str, status: str) -> None:
    await client.hset(
        keys.job(job_id),
        mapping={"status": status, "route": "r", "priority": "normal", "created_at": "1"},
    )


def _cancel(keys: Keys, job_id: str) -> scripts.ScriptCall:
    return scripts.cancel(
        record=keys.job(job_id), stream=keys.stream(Priority.NORMAL, "r"),
        delayed=keys.delayed, events=keys.events(job_id), counts=keys.counts,
        counter=Counter.of(Priority.NORMAL, "r"), job_id=job_id,
        channel=keys.done_channel, change=Change(JobStatus.CANCELLED, 60),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "cancels"),
    [("queued", True), ("processing", True), ("retrying", True), ("completed", False),
     ("dead", False), ("cancelled", False)],
)  # fmt: skip
async def test_lifecycle_guard_lets_cancel_through_only_before_the_end(
    runner: Scripts, redis_client: aioredis.Redis, key_prefix: str, status: str, cancels: bool
) -> None:
    keys = Keys(key_prefix)
    await _record(redis_client, keys, "job1", status)

    previous = await runner.run(_cancel(keys, "job1"))

    assert (previous == status.encode()) is cancels
    expected = "cancelled" if cancels else status
    assert await redis_client.hget(keys.job("job1"), "status") == expected.encode()


async def test_ownership_refuses_a_commit_from_a_consumer_that_does_not_hold_the_entry(
    runner: Scripts, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    stream = keys.running
    await redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    added = await redis_client.xadd(stream, {"job_id": "job1"})
    entry = added.decode() if isinstance(added, bytes) else added
    await redis_client.xreadgroup(GROUP, "holder", {stream: ">"}, count=1)
    await _record(redis_client, keys, "job1", "processing")

    def finish(consumer: str) -> scripts.ScriptCall:
        return scripts.finish(
            record=keys.job("job1"), slots_key=keys.slots("g"), ends=keys.ends("g"),
            events=keys.events("job1"), held=Held(stream, GROUP, consumer, entry, "job1"),
            channel=keys.done_channel,
            change=Change(JobStatus.COMPLETED, 60, {"result": "x"}),
        )  # fmt: skip

    assert not await runner.run(finish("intruder"))
    assert await redis_client.hget(keys.job("job1"), "status") == b"processing"
    assert await runner.run(finish("holder")) == b"processing"
    assert await redis_client.hget(keys.job("job1"), "status") == b"completed"
    assert await redis_client.xlen(stream) == 0, "the handled entry is deleted"


@pytest.mark.parametrize(
    ("state", "probe", "takes"),
    [("closed", False, True), ("open", False, False), ("half_open", False, False),
     ("half_open", True, True)],
)  # fmt: skip
async def test_take_rereads_the_breaker_in_the_same_step(
    runner: Scripts, redis_client: aioredis.Redis, key_prefix: str, state: str, probe: bool,
    takes: bool,
) -> None:  # fmt: skip
    keys = Keys(key_prefix)
    await redis_client.hset(keys.breaker("g"), mapping={"state": state, "version": 1})

    reply, stream = await _take_one(runner, redis_client, keys, Priority.NORMAL, probe=probe)

    assert (reply[0] == 1) is takes
    assert await redis_client.zcard(keys.slots("g")) == (1 if takes else 0)
    assert await redis_client.xlen(stream) == (0 if takes else 1), "a refused take moves nothing"


@pytest.mark.parametrize(
    ("priority", "interactive_waiting", "reply"),
    [(Priority.BATCH, 1, -2), (Priority.BATCH, 0, 1), (Priority.LOW, 1, 1)],
)
async def test_take_refuses_a_batch_entry_while_interactive_work_of_its_route_waits(
    runner: Scripts, redis_client: aioredis.Redis, key_prefix: str, priority: Priority,
    interactive_waiting: int, reply: int,
) -> None:  # fmt: skip
    keys = Keys(key_prefix)
    waiting = Counter.of(Priority.HIGH, "r")  # arrived after the caller's PEEK, say
    await redis_client.hset(
        keys.counts, mapping={waiting.entered: 5, waiting.left: 5 - interactive_waiting}
    )
    outranking = (waiting,) if priority is Priority.BATCH else ()

    got, stream = await _take_one(runner, redis_client, keys, priority, outranking=outranking)

    assert got[0] == reply
    assert await redis_client.xlen(stream) == (1 if reply < 0 else 0)


async def _take_one(
    runner: Scripts, redis_client: aioredis.Redis, keys: Keys, priority: Priority, *,
    probe: bool = False, outranking: tuple[Counter, ...] = (),
) -> tuple[list[Any], str]:  # fmt: skip
    """TAKE of a queued job's only entry on route "r" for GPU "g" (1 slot); the reply, stream."""
    stream = keys.stream(priority, "r")
    added = cast(bytes, await redis_client.xadd(stream, {"job_id": "job1"}))
    await _record(redis_client, keys, "job1", "queued")
    target = scripts.TakeTarget(stream, Counter.of(priority, "r"), added.decode(), "job1",
                                keys.job("job1"), keys.events("job1"), outranking)  # fmt: skip
    reply = await runner.run(scripts.take(
        slots_key=keys.slots("g"), breaker=keys.breaker("g"), counts=keys.counts,
        ends=keys.ends("g"), running=keys.running, target=target, group=GROUP, consumer="c1",
        slots=1, lease_ms=60_000, probe=probe, gpu="g", started_at=time.time(),
        channel=keys.done_channel, predicted_end_ms=None,
    ))  # fmt: skip
    return cast(list[Any], reply), stream


def test_every_key_of_a_deployment_shares_one_hash_tag() -> None:
    keys = Keys("sq")
    names = [keys.stream(Priority.NORMAL, "r"), keys.job("j"), keys.events("j"), keys.dlq,
             keys.delayed, keys.wake, keys.slots("g"), keys.breaker("g"), keys.consumers,
             keys.consumer("c"), keys.idempotency("d"), keys.running, keys.ends("g"),
             keys.speed("g")]  # fmt: skip
    assert all(name.startswith("{sq}:") for name in names)


async def test_scripts_load_on_a_fresh_server(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        loaded = Scripts(client)
        reply = await loaded.run(scripts.reconcile(counts="{x}:counts", streams=[]))
        assert reply == 0
    finally:
        await client.aclose()
    assert time.time() > 0
