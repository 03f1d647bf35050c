"""The Batch API end to end: the real openai client, the engine and sim GPUs."""

from __future__ import annotations

from collections.abc import Callable

import openai
import redis.asyncio as aioredis

from smartqueue.config import Settings
from smartqueue.store.keys import Keys
from tests.batch.conftest import chat_line, jsonl, lines_of, openai_client, upload, wait_batch
from tests.engine.conftest import fleet_for, service
from tests.support.sim import SimHandle
from tests.support.waiting import wait_until


async def test_batch_every_line_answered_once_in_the_output_file(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 2})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})
    custom_ids = [f"req-{i}" for i in range(20)]

    async with service(batch_settings(), fleet) as http:
        client = openai_client(http)
        file_id = await upload(client, jsonl([chat_line(c) for c in custom_ids]))
        created = await client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h",
            metadata={"team": "eval"},
        )  # fmt: skip
        batch = await wait_batch(client, created.id)
        output = await lines_of(client, batch.output_file_id)

    assert created.status == "in_progress"
    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (20, 20)
    assert batch.error_file_id is None
    assert batch.metadata == {"team": "eval"}
    assert [line["custom_id"] for line in output] == custom_ids
    assert all(line["response"]["status_code"] == 200 for line in output)
    assert all(line["response"]["body"]["model"] == "model-a" for line in output)
    assert all(line["error"] is None for line in output)


async def test_batch_with_bad_lines_fails_naming_each_line(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    good = chat_line("ok")
    lines = [
        jsonl([good]).strip(), b"{not json", jsonl([good]).strip(),  # 3: duplicate custom_id
        jsonl([{**chat_line("m"), "method": "GET"}]).strip(),
        jsonl([{**chat_line("u"), "url": "/v1/completions"}]).strip(),
        jsonl([{**chat_line("b"), "body": [1]}]).strip(),
        jsonl([chat_line("x", model="no-such-model")]).strip(),
    ]  # fmt: skip

    async with service(batch_settings(), fleet) as http:
        client = openai_client(http)
        file_id = await upload(client, b"\n".join(lines) + b"\n")
        batch = await client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )

    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.errors is not None
    assert batch.errors.data is not None
    found = [(error.line, error.code) for error in batch.errors.data]
    assert found == [(2, "invalid_json_line"), (3, "duplicate_custom_id"), (4, "invalid_method"),
                     (5, "invalid_url"), (6, "invalid_body"), (7, "model_not_found")]  # fmt: skip
    assert sum(gpus["a"].stats()["requests_by_job"].values()) == 0


async def test_batch_routes_each_line_by_model_or_by_the_creation_header(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1}, b={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"], "heavy": ["b"]}, {"a": 1, "b": 1})
    by_model = [chat_line("route", model="heavy"), chat_line("served", model="model-a")]

    async with service(batch_settings(), fleet) as http:
        client = openai_client(http)
        file_id = await upload(client, jsonl(by_model))
        first = await client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        second = await client.batches.create(
            input_file_id=await upload(client, jsonl([chat_line("forced", model="?")])),
            endpoint="/v1/chat/completions", completion_window="24h",
            extra_headers={"X-Syslog-Model": "heavy"},
        )  # fmt: skip
        done = [await wait_batch(client, batch.id) for batch in (first, second)]
        lines = [line for batch in done for line in await lines_of(client, batch.output_file_id)]
        models = {line["custom_id"]: line["response"]["body"]["model"] for line in lines}

    assert models == {"route": "model-b", "served": "model-a", "forced": "model-b"}


async def test_batch_request_failing_for_good_becomes_an_error_line(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 2})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})
    gpus["a"].set_faults("error", rate=0.5)
    custom_ids = [f"r{i}" for i in range(16)]

    async with service(batch_settings(max_retries=0, breaker_failure_threshold=100), fleet) as http:
        client = openai_client(http)
        created = await client.batches.create(
            input_file_id=await upload(client, jsonl([chat_line(c) for c in custom_ids])),
            endpoint="/v1/chat/completions", completion_window="24h",
        )  # fmt: skip
        batch = await wait_batch(client, created.id)
        output = await lines_of(client, batch.output_file_id)
        errors = await lines_of(client, batch.error_file_id)

    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (
        len(output),
        len(errors),
    )
    assert output
    assert errors
    assert sorted(line["custom_id"] for line in output + errors) == sorted(custom_ids)
    assert all(line["error"]["code"] == "retries_exhausted" for line in errors)
    assert all(line["error"]["message"] for line in errors)


async def test_batch_cancelled_mid_way_keeps_what_ran_and_names_the_rest(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1, "speed": 20.0})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    custom_ids = [f"c{i}" for i in range(30)]

    async with service(batch_settings(), fleet) as http:
        client = openai_client(http)
        created = await client.batches.create(
            input_file_id=await upload(client, jsonl([chat_line(c) for c in custom_ids])),
            endpoint="/v1/chat/completions", completion_window="24h",
        )  # fmt: skip
        await wait_until_counted(client, created.id, at_least=2)
        cancelling = await client.batches.cancel(created.id)
        batch = await wait_batch(client, created.id)
        output = await lines_of(client, batch.output_file_id)
        errors = await lines_of(client, batch.error_file_id)

    assert cancelling.status in {"cancelling", "cancelled"}
    assert batch.status == "cancelled"
    assert batch.cancelled_at is not None
    assert 2 <= len(output) < len(custom_ids)
    assert sorted(line["custom_id"] for line in output + errors) == sorted(custom_ids)
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert sum(gpus["a"].stats()["requests_by_job"].values()) == len(output)


async def wait_until_counted(client: openai.AsyncOpenAI, batch_id: str, *, at_least: int) -> None:
    """Wait until `at_least` requests of the batch ended."""

    async def counted() -> bool:
        batch = await client.batches.retrieve(batch_id)
        counts = batch.request_counts
        return counts is not None and counts.completed + counts.failed >= at_least

    await wait_until(counted, timeout_s=30, what=f"{at_least} requests of {batch_id} ended")


async def test_batch_past_its_window_ends_expired_with_what_completed(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings],
    redis_client: aioredis.Redis,
) -> None:  # fmt: skip
    gpus = sims(a={"slots": 1, "speed": 20.0})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    settings = batch_settings()
    custom_ids = [f"e{i}" for i in range(30)]

    async with service(settings, fleet) as http:
        client = openai_client(http)
        created = await client.batches.create(
            input_file_id=await upload(client, jsonl([chat_line(c) for c in custom_ids])),
            endpoint="/v1/chat/completions", completion_window="24h",
        )  # fmt: skip
        await wait_until_counted(client, created.id, at_least=2)
        # The window is 24 h: move its end to the past instead of waiting a day.
        await redis_client.hset(Keys(settings.key_prefix).batch(created.id), "expires_at", 1)
        batch = await wait_batch(client, created.id)
        output = await lines_of(client, batch.output_file_id)
        errors = await lines_of(client, batch.error_file_id)

    assert batch.status == "expired"
    assert batch.expired_at is not None
    assert output
    assert sorted(line["custom_id"] for line in output + errors) == sorted(custom_ids)
    assert {line["error"]["code"] for line in errors} == {"batch_expired"}
