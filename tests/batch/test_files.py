"""The Files API: OpenAI's shapes, owners kept apart, the size limit, files in use kept."""

from __future__ import annotations

import io
from collections.abc import Callable

import openai
import pytest

from smartqueue.config import Settings
from tests.batch.conftest import chat_line, jsonl, openai_client, upload
from tests.engine.conftest import fleet_for, service
from tests.support.sim import SimHandle


async def test_files_upload_list_read_delete_with_openai_shapes(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    data = jsonl([chat_line("one")])

    async with service(batch_settings(consumers=0), fleet) as http:
        client = openai_client(http)
        created = await client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
        listed = await client.files.list()
        fetched = await client.files.retrieve(created.id)
        content = await client.files.content(created.id)
        deleted = await client.files.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await client.files.retrieve(created.id)

    assert (created.object, created.purpose, created.bytes) == ("file", "batch", len(data))
    assert created.filename == "in.jsonl"
    assert [file.id for file in listed.data] == [created.id]
    assert fetched == created
    assert content.content == data
    assert (deleted.id, deleted.deleted) == (created.id, True)


async def test_files_and_batches_of_another_owner_are_not_found(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})

    async with service(batch_settings(consumers=0), fleet) as http:
        alice, bob = openai_client(http, api_key="alice"), openai_client(http, api_key="bob")
        file_id = await upload(alice, jsonl([chat_line("one")]))
        batch = await alice.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        with pytest.raises(openai.NotFoundError):
            await bob.files.retrieve(file_id)
        with pytest.raises(openai.NotFoundError):
            await bob.batches.retrieve(batch.id)
        with pytest.raises(openai.NotFoundError):
            await bob.batches.create(
                input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        with pytest.raises(openai.NotFoundError):
            await bob.batches.cancel(batch.id)
        bobs = await bob.batches.list()
        alices = await alice.batches.list()

    assert bobs.data == []
    assert [b.id for b in alices.data] == [batch.id]


async def test_files_over_the_size_limit_are_refused_with_413(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})

    async with service(batch_settings(consumers=0, max_file_bytes=100), fleet) as http:
        client = openai_client(http)
        with pytest.raises(openai.APIStatusError) as refused:
            await upload(client, jsonl([chat_line(f"{i}") for i in range(5)]))
        listed = await client.files.list()

    assert refused.value.status_code == 413
    assert listed.data == []


async def test_files_read_by_an_open_batch_cannot_be_deleted(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})

    async with service(batch_settings(consumers=0), fleet) as http:
        client = openai_client(http)
        file_id = await upload(client, jsonl([chat_line("one")]))
        await client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        with pytest.raises(openai.ConflictError):
            await client.files.delete(file_id)


async def test_batches_list_pages_newest_first_with_after(
    sims: Callable[..., dict[str, SimHandle]], batch_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})

    async with service(batch_settings(consumers=0), fleet) as http:
        client = openai_client(http)
        file_id = await upload(client, jsonl([chat_line("one")]))
        ids = []
        for _ in range(3):
            batch = await client.batches.create(
                input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            ids.append(batch.id)
        first = await client.batches.list(limit=2)
        rest = await client.batches.list(limit=2, after=first.data[-1].id)

    assert [b.id for b in first.data] + [b.id for b in rest.data] == ids[::-1]
    assert first.has_more
    assert not rest.has_more
