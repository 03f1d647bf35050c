"""The batch scripts on their own: a request fed once, its line kept once."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from smartqueue.models import JobStatus, Priority
from smartqueue.store import scripts
from smartqueue.store.keys import GROUP, Counter, Keys
from smartqueue.store.scripts import BatchLine, Change, Held, Scripts


@pytest.fixture
def runner(redis_client: aioredis.Redis) -> Scripts:
    """Every script, registered on the test client."""
    return Scripts(redis_client)


def fed(keys: Keys, job_id: str) -> scripts.FedRequest:
    """A request of batch `b1` on route `r`."""
    return scripts.FedRequest(job_id, b"{}", "{}", "/v1/chat/completions", "r", f"c-{job_id}",
                              keys.stream(Priority.BATCH, "r"), keys.job(job_id),
                              Counter.of(Priority.BATCH, "r"))  # fmt: skip


def feed(keys: Keys, cursor: int, job_ids: list[str]) -> scripts.ScriptCall:
    """Feed `job_ids` as the requests after `cursor`."""
    return scripts.batch_feed(
        batch=keys.batch("b1"), counts=keys.counts, wake=keys.wake, batch_id="b1",
        cursor=cursor, next_line=cursor + len(job_ids), next_offset=100, created_ms=1000, owner="",
        requests=[fed(keys, job_id) for job_id in job_ids],
    )  # fmt: skip


async def test_batch_feed_twice_from_one_cursor_feeds_once(
    runner: Scripts, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    await redis_client.hset(keys.batch("b1"), mapping={"status": "in_progress", "next_line": 0})

    first = await runner.run(feed(keys, 0, ["j1", "j2"]))
    again = await runner.run(feed(keys, 0, ["j3", "j4"]))  # another replica, same cursor read

    assert (first, again) == (2, 0)
    assert await redis_client.xlen(keys.stream(Priority.BATCH, "r")) == 2
    assert await redis_client.hmget(keys.batch("b1"), ["next_line", "fed"]) == [b"2", b"2"]
    assert await redis_client.hget(keys.job("j1"), "priority") == b"batch"


async def test_batch_line_of_a_custom_id_is_kept_once(
    runner: Scripts, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    stream = keys.running
    await redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)

    async def end(job_id: str, text: bytes) -> object:
        added = await redis_client.xadd(stream, {"job_id": job_id})
        entry = added.decode() if isinstance(added, bytes) else str(added)
        await redis_client.xreadgroup(GROUP, "c", {stream: ">"}, count=1)
        await redis_client.hset(keys.job(job_id), "status", "processing")
        return await runner.run(scripts.finish(
            record=keys.job(job_id), slots_key=keys.slots("g"), ends=keys.ends("g"),
            events=keys.events(job_id), held=Held(stream, GROUP, "c", entry, job_id),
            channel=keys.done_channel,
            change=Change(JobStatus.COMPLETED, 60),
            line=BatchLine(keys.batch_lines("b1"), keys.batch("b1"), "same", "completed", text),
        ))  # fmt: skip

    await end("j1", b"first")
    await end("j2", b"second")  # the same request run again (a replay): nothing more is kept

    assert await redis_client.hgetall(keys.batch_lines("b1")) == {b"same": b"completed:first"}
    assert await redis_client.hget(keys.batch("b1"), "completed") == b"1"
