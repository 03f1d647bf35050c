"""The Batch API end to end: the real openai client, the engine and sim GPUs."""

from __future__ import annotations

from collections.abc import Callable

from smartqueue.config import Settings
from tests.batch.conftest import chat_line, jsonl, lines_of, openai_client, upload, wait_batch
from tests.engine.conftest import fleet_for, service
from tests.support.sim import SimHandle


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
