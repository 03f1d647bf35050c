"""GPU choice: preferred first, fallbacks when it is full or down, no head-of-line blocking."""

from __future__ import annotations

import time
from collections.abc import Callable

from smartqueue.config import Settings
from tests.engine.conftest import (
    CHAT,
    direct_client,
    fleet_for,
    job_record,
    service,
    slow_chat,
    submit,
    wait_gpus_down,
    wait_status,
    wait_terminal,
)
from tests.support.sim import InProcessSim

SLOW = {"speed": 1.0}  # default profile: 0.2 s to the first token, 40 tokens/s


async def test_choice_jobs_for_a_free_gpu_complete_while_another_gpus_route_is_backed_up(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(busy={"slots": 1, **SLOW}, free={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["free"], "heavy": ["busy"]}, {"busy": 1, "free": 1})
    async with service(engine_settings(), fleet) as client:
        heavy = [await submit(client, slow_chat(40), x_syslog_model="heavy") for _ in range(3)]
        await wait_status(client, heavy[0], {"processing"})
        started = time.monotonic()
        light = [await submit(client) for _ in range(5)]
        records = await wait_terminal(client, light)
        elapsed_s = time.monotonic() - started
        heavy_waiting = [
            job_id for job_id in heavy
            if (await job_record(client, job_id))["status"] in ("queued", "processing")
        ]  # fmt: skip

    print(f"no head-of-line blocking: {len(light)} jobs for the free GPU done in "
          f"{elapsed_s:.2f} s while {len(heavy_waiting)} wait for the busy one")  # fmt: skip
    assert {record["status"] for record in records.values()} == {"completed"}
    assert {record["gpu"] for record in records.values()} == {"free"}
    assert len(heavy_waiting) >= 2, "the busy GPU's route was still backed up"


async def test_choice_preferred_gpu_full_falls_back_to_the_second_with_its_model(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1, **SLOW}, b={"slots": 1, **SLOW})
    fleet = fleet_for(gpus, {"default": ["a", "b"]}, {"a": 1, "b": 1})
    async with service(engine_settings(), fleet) as client:
        first = await submit(client, slow_chat(20))
        await wait_status(client, first, {"processing"})
        second = await submit(client, slow_chat(20))
        records = await wait_terminal(client, [first, second])

    assert records[first]["gpu"] == "a", "the preferred GPU first"
    assert records[second]["gpu"] == "b", "the second GPU while the preferred one is full"
    for record in records.values():
        assert record["status"] == "completed"
        assert record["result"]["model"] == f"model-{record['gpu']}"
    async with direct_client() as direct:
        refused = await direct.post(f"{gpus['a'].url}/v1/chat/completions", json=CHAT)
    assert refused.status_code == 404, "vLLM rejects a model it does not serve"


async def test_choice_preferred_gpu_down_sends_every_job_to_the_second(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 2}, b={"slots": 2})
    gpus["a"].set_faults("refuse")
    fleet = fleet_for(gpus, {"default": ["a", "b"]}, {"a": 2, "b": 2})
    async with service(engine_settings(), fleet) as client:
        await wait_gpus_down(client, ["a"])
        job_ids = [await submit(client) for _ in range(4)]
        records = await wait_terminal(client, job_ids)

    assert {record["status"] for record in records.values()} == {"completed"}
    assert {record["gpu"] for record in records.values()} == {"b"}
    assert {record["result"]["model"] for record in records.values()} == {"model-b"}
    assert gpus["b"].stats()["requests_by_job"] == dict.fromkeys(job_ids, 1)
