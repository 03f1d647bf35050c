"""Dispatch: jobs reach a GPU of their route and complete with the GPU's answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smartqueue.config import Settings
from tests.engine.conftest import fleet_for, service, submit, wait_terminal
from tests.support.sim import SimHandle


async def test_engine_job_completes_with_the_gpus_answer_and_served_model(
    sims: Callable[..., dict[str, SimHandle]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 2})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})

    async with service(engine_settings(), fleet) as client:
        job_id = await submit(client)
        records = await wait_terminal(client, [job_id])

    record: dict[str, Any] = records[job_id]
    assert record["status"] == "completed", record
    assert record["gpu"] == "a"
    assert record["attempts"] == 1
    assert record["result_status"] == 200
    assert record["result"]["model"] == "model-a"
    assert gpus["a"].stats()["requests_by_job"] == {job_id: 1}
