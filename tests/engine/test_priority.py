"""Priorities: high is served first, and lower priorities still get through (bounded wait)."""

from __future__ import annotations

import time
from collections.abc import Callable

from smartqueue.config import Settings
from tests.engine.conftest import (
    fleet_for,
    job_record,
    service,
    slow_chat,
    submit,
    wait_status,
    wait_terminal,
)
from tests.support.sim import InProcessSim
from tests.support.waiting import wait_until

STARTED = {"processing", "retrying", "completed", "dead"}


async def test_priority_waiting_jobs_run_high_then_normal_then_low_each_in_arrival_order(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    submitted: dict[str, list[str]] = {"high": [], "normal": [], "low": []}
    async with service(engine_settings(consumers=0), fleet) as api_only:
        for _ in range(3):
            for priority in ("low", "normal", "high"):
                job_id = await submit(api_only, x_syslog_priority=priority)
                submitted[priority].append(job_id)

    async with service(engine_settings(), fleet) as client:
        job_ids = [job_id for jobs in submitted.values() for job_id in jobs]
        records = await wait_terminal(client, job_ids)

    run_order = sorted(job_ids, key=lambda job_id: records[job_id]["started_at"])
    print(f"run order by priority: {[records[j]['priority'] for j in run_order]}")
    assert run_order == submitted["high"] + submitted["normal"] + submitted["low"]


async def test_priority_backlog_of_low_with_a_stream_of_high_serves_high_first_and_all_low(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1, "speed": 4})  # about 0.1 s per job
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    async with service(engine_settings(), fleet) as client:
        lows = [await submit(client, slow_chat(), x_syslog_priority="low") for _ in range(8)]
        highs: list[str] = []
        accepted_at: dict[str, float] = {}
        for _ in range(6):  # each high arrives while the previous one runs
            highs.append(await submit(client, slow_chat(), x_syslog_priority="high"))
            accepted_at[highs[-1]] = time.time()
            await wait_status(client, highs[-1], STARTED)
        records = await wait_terminal(client, lows + highs)

    started = {job_id: record["started_at"] for job_id, record in records.items()}
    overtaken_by_low = [
        (high, low) for high in highs for low in lows
        if accepted_at[high] < started[low] < started[high]
    ]  # fmt: skip
    high_waits = [started[h] - records[h]["created_at"] for h in highs]
    completed_lows = sum(records[low]["status"] == "completed" for low in lows)
    print(f"low backlog {len(lows)} + high stream {len(highs)}: max high wait "
          f"{max(high_waits):.2f} s, highs overtaken by a low: {len(overtaken_by_low)}, "
          f"lows completed {completed_lows}/{len(lows)}")  # fmt: skip
    assert overtaken_by_low == []
    assert any(started[low] > started[highs[-1]] for low in lows), "lows were still waiting"
    assert completed_lows == len(lows)
    assert all(records[h]["status"] == "completed" for h in highs)


async def test_priority_aging_serves_a_low_job_within_bounded_wait_under_constant_high_load(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 1, "speed": 4})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 1})
    aging_s = 0.6
    async with service(engine_settings(priority_aging_s=aging_s), fleet) as client:
        highs = [await submit(client, slow_chat(), x_syslog_priority="high") for _ in range(3)]
        low = await submit(client, slow_chat(), x_syslog_priority="low")

        async def low_started_while_highs_wait() -> bool:
            if (await job_record(client, low))["status"] in STARTED:
                return True
            waiting = [h for h in highs if (await job_record(client, h))["status"] == "queued"]
            for _ in range(3 - len(waiting)):  # keep three highs waiting at all times
                highs.append(await submit(client, slow_chat(), x_syslog_priority="high"))
            return False

        await wait_until(low_started_while_highs_wait, timeout_s=20, what="the low job to run")
        records = await wait_terminal(client, [low, *highs])

    low_wait_s = records[low]["started_at"] - records[low]["created_at"]
    passed = [h for h in highs if records[h]["started_at"] > records[low]["started_at"]]
    print(f"aging {aging_s} s: low job waited {low_wait_s:.2f} s under constant high load "
          f"({len(highs)} highs, {len(passed)} of them queued when it ran)")  # fmt: skip
    assert aging_s <= low_wait_s < aging_s + 1.0
    assert passed, "highs were waiting when the low job ran"
