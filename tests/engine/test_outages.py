"""GPU outages: jobs wait instead of dying, expire only past max_wait_s, deadlines bound calls."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from smartqueue.config import Settings
from tests.engine.conftest import (
    dlq_entries,
    fleet_for,
    gpu_views,
    job_record,
    service,
    submit,
    wait_gpus_down,
    wait_status,
    wait_terminal,
)
from tests.support.sim import InProcessSim
from tests.support.waiting import holds_for, wait_until

WAITING = {"queued", "retrying"}


async def _assert_all_waiting(client: httpx.AsyncClient, job_ids: list[str]) -> None:
    statuses = {(await job_record(client, job_id))["status"] for job_id in job_ids}
    assert statuses <= WAITING, statuses
    assert await dlq_entries(client) == []


async def test_outage_all_gpus_down_jobs_wait_then_all_complete_when_gpus_return(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 2}, b={"slots": 1})
    for gpu in gpus.values():
        gpu.set_faults("refuse")
    fleet = fleet_for(gpus, {"default": ["a", "b"], "heavy": ["b"]}, {"a": 2, "b": 1})
    outage_s = 2.0
    async with service(engine_settings(), fleet) as client:
        await wait_gpus_down(client, ["a", "b"])
        job_ids = [await submit(client, x_syslog_model=route)
                   for route in ["default", "heavy"] * 5]  # fmt: skip
        await holds_for(lambda: _assert_all_waiting(client, job_ids), duration_s=outage_s)
        for gpu in gpus.values():
            gpu.set_faults("none")
        returned = time.monotonic()
        records = await wait_terminal(client, job_ids)
        drained_s = time.monotonic() - returned
        dlq = await dlq_entries(client)

    completed = sum(record["status"] == "completed" for record in records.values())
    print(f"all GPUs down {outage_s:g} s: {len(job_ids)} jobs waited, none dead; "
          f"completed {completed}/{len(job_ids)} {drained_s:.2f} s after the GPUs came back, "
          f"dead-lettered={len(dlq)}")  # fmt: skip
    assert completed == len(job_ids)
    assert dlq == []


async def test_outage_no_gpu_keeps_the_job_queued_until_max_wait_then_it_expires_to_dlq(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    gpus["a"].set_faults("refuse")
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    max_wait_s = 2.0
    async with service(engine_settings(max_wait_s=max_wait_s), fleet) as client:
        await wait_gpus_down(client, ["a"])
        job_id = await submit(client)
        await holds_for(lambda: _assert_all_waiting(client, [job_id]), duration_s=1.0)
        record = await wait_status(client, job_id, {"dead", "completed"})
        dlq = await dlq_entries(client)

    waited_s = record["completed_at"] - record["created_at"]
    assert record["status"] == "dead"
    assert record["reason"] == "expired"
    assert record["attempts"] == 0
    assert max_wait_s <= waited_s < max_wait_s + 1.0
    assert [(entry["job_id"], entry["reason"]) for entry in dlq] == [(job_id, "expired")]


async def test_outage_opening_a_breaker_dead_letters_no_job(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1, "fault": "error"})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    async with service(engine_settings(breaker_recovery_s=2.0), fleet) as client:
        first = await submit(client)

        async def breaker_open() -> bool:
            return bool((await gpu_views(client))["a"]["breaker"]["state"] == "open")

        await wait_until(breaker_open, timeout_s=10, what="the breaker to open")
        job_ids = [first] + [await submit(client) for _ in range(4)]
        await _assert_all_waiting(client, job_ids)
        gpus["a"].set_faults("none")
        records = await wait_terminal(client, job_ids)
        dlq = await dlq_entries(client)

    assert {record["status"] for record in records.values()} == {"completed"}
    assert records[first]["attempts"] == 4, "three failures, then the probe"
    assert dlq == []


async def test_outage_dripping_gpu_is_cut_off_by_the_jobs_deadline(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1, "speed": 1.0})
    gpus["a"].set_faults("drip", drip_interval_s=0.2)  # a ~300-byte answer would take a minute
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    deadline_s = 1.0
    settings = engine_settings(job_timeout_s=deadline_s, max_retries=0)
    async with service(settings, fleet) as client:
        job_id = await submit(client)
        record = await wait_status(client, job_id, {"dead", "completed"})
        slots_in_use = (await gpu_views(client))["a"]["slots_in_use"]

    call_s = record["completed_at"] - record["started_at"]
    print(f"dripping GPU: the {deadline_s:g} s deadline fired after {call_s:.2f} s; "
          f"slots in use afterwards={slots_in_use}")  # fmt: skip
    assert record["status"] == "dead"
    assert record["error"]["code"] == "timeout"
    assert deadline_s <= call_s < deadline_s + 1.0
    assert slots_in_use == 0
    assert gpus["a"].stats()["requests_by_job"] == {job_id: 1}
