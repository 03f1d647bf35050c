"""GPU failures: retries with backoff, non-retryable answers, oversized results, DLQ re-runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from smartqueue.config import Settings
from tests.engine.conftest import (
    CHAT,
    dlq_entries,
    fleet_for,
    service,
    slow_chat,
    submit,
    wait_status,
    wait_terminal,
)
from tests.support.sim import InProcessSim
from tests.support.waiting import wait_until

ENDED = {"completed", "dead"}


async def test_retry_after_a_429_waits_at_least_its_retry_after(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    gpus["a"].set_faults("rate_limit", retry_after_s=1)
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    async with service(engine_settings(retry_cap_s=0.2), fleet) as client:
        job_id = await submit(client)

        async def rate_limited() -> bool:
            return bool(gpus["a"].stats()["faults_injected_total"] == 1)

        await wait_until(rate_limited, timeout_s=10, what="the first (429) call")
        gpus["a"].set_faults("none")
        record = await wait_status(client, job_id, ENDED)

    waited_s = record["started_at"] - record["created_at"]
    print(f"429 with Retry-After 1 s: the retry started {waited_s:.2f} s after submission "
          f"(backoff alone is capped at 0.2 s)")  # fmt: skip
    assert record["status"] == "completed"
    assert record["attempts"] == 2
    assert waited_s >= 1.0
    assert gpus["a"].stats()["requests_by_job"] == {job_id: 2}


async def test_retry_non_retryable_400_is_dead_at_once_with_the_gpus_error(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    async with service(engine_settings(), fleet) as client:
        job_id = await submit(client, {**CHAT, "messages": []})
        record = await wait_status(client, job_id, ENDED)
        dlq = await dlq_entries(client)

    assert record["status"] == "dead"
    assert record["reason"] == "non_retryable"
    assert record["attempts"] == 1
    assert record["result_status"] == 400
    assert "non-empty array" in record["result"]["error"]["message"], "the GPU's own body"
    assert record["error"]["gpu_status"] == 400
    assert "non-empty array" in record["error"]["message"]
    [entry] = dlq
    assert (entry["job_id"], entry["reason"], entry["attempts"]) == (job_id, "non_retryable", 1)
    assert "non-empty array" in entry["last_error"]["message"]
    assert gpus["a"].stats()["requests_by_job"] == {job_id: 1}


@pytest.mark.parametrize(
    ("fault", "code"),
    [("error", "http"), ("invalid_json", "protocol"), ("close_mid_stream", "protocol")],
)
async def test_retry_failing_gpu_is_retried_then_dead_with_retries_exhausted(
    sims: Callable[..., dict[str, InProcessSim]],
    engine_settings: Callable[..., Settings],
    fault: str,
    code: str,
) -> None:
    gpus = sims(a={"slots": 1, "fault": fault})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    async with service(engine_settings(max_retries=1), fleet) as client:
        job_id = await submit(client)
        record = await wait_status(client, job_id, ENDED)
        dlq = await dlq_entries(client)

    assert record["status"] == "dead"
    assert record["reason"] == "retries_exhausted"
    assert record["attempts"] == 2
    assert record["error"]["code"] == code
    assert [(entry["job_id"], entry["reason"], entry["attempts"]) for entry in dlq] == [
        (job_id, "retries_exhausted", 2)
    ]
    assert gpus["a"].stats()["requests_by_job"] == {job_id: 2}


async def test_result_over_the_cap_is_dead_result_too_large_never_truncated(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    async with service(engine_settings(max_result_bytes=200), fleet) as client:
        job_id = await submit(client, slow_chat(32))
        record = await wait_status(client, job_id, ENDED)
        dlq = await dlq_entries(client)

    assert record["status"] == "dead"
    assert record["reason"] == "result_too_large"
    assert record["result"] is None, "no partial result is kept"
    assert "200 byte" in record["error"]["message"]
    assert [(entry["job_id"], entry["reason"]) for entry in dlq] == [(job_id, "result_too_large")]
    assert gpus["a"].stats()["requests_by_job"] == {job_id: 1}, "not retried"


async def test_dlq_retry_runs_the_dead_job_again_exactly_once_even_when_asked_twice(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1, "fault": "error"})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    async with service(engine_settings(max_retries=0), fleet) as client:
        dead_id = await submit(client)
        await wait_status(client, dead_id, ENDED)
        [entry] = await dlq_entries(client)
        gpus["a"].set_faults("none")
        admin = {"Authorization": "Bearer t"}
        answers = await asyncio.gather(
            *(client.post(f"/dlq/{entry['id']}/retry", headers=admin) for _ in range(2))
        )
        assert sorted(answer.status_code for answer in answers) == [202, 404]
        rerun: dict[str, Any] = next(a.json() for a in answers if a.status_code == 202)
        records = await wait_terminal(client, [rerun["job_id"], dead_id])
        dlq_after = await dlq_entries(client)

    new = records[rerun["job_id"]]
    assert rerun["retry_of"] == dead_id
    assert new["status"] == "completed"
    assert new["retry_of"] == dead_id
    assert records[dead_id]["retried_as"] == rerun["job_id"]
    assert gpus["a"].stats()["requests_by_job"] == {dead_id: 1, rerun["job_id"]: 1}
    assert dlq_after == []
