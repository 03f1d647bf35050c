"""Counters, slots and the Prometheus text of the engine metric endpoints."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from smartqueue_sim.metrics import llamacpp_metrics, render_metrics, vllm_metrics
from smartqueue_sim.slots import SlotPool
from smartqueue_sim.state import LoadSnapshot, SimCounters

LOAD = LoadSnapshot(
    slots=2,
    processing=2,
    deferred=3,
    active_context_tokens=4096,
    prompt_tokens_total=100,
    tokens_predicted_total=250,
    completed_total=7,
)


def _samples(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_llamacpp_metrics_parse_with_the_real_names() -> None:
    samples = _samples(render_metrics(llamacpp_metrics(LOAD, tokens_per_s=40)))
    assert samples["llamacpp:requests_processing"] == 2
    assert samples["llamacpp:requests_deferred"] == 3
    assert samples["llamacpp:prompt_tokens_total"] == 100
    assert samples["llamacpp:tokens_predicted_total"] == 250


def test_vllm_metrics_parse_with_the_real_names_and_kv_usage_fraction() -> None:
    samples = _samples(render_metrics(vllm_metrics(LOAD, model="m", context_tokens=4096)))
    assert samples["vllm:num_requests_running"] == 2
    assert samples["vllm:num_requests_waiting"] == 3
    assert samples["vllm:kv_cache_usage_perc"] == pytest.approx(0.5)
    assert samples["vllm:generation_tokens_total"] == 250


def test_counters_track_high_water_marks_and_requests_per_job() -> None:
    counters = SimCounters()
    for job in ("a", "b", "a", None):
        counters.record_arrival(job)
        counters.enter()
    counters.start_generation(10)
    counters.end_generation(10)
    for _ in range(4):
        counters.leave(completed=True)
    stats = counters.stats()
    assert stats.requests_by_job == {"a": 2, "b": 1}
    assert (stats.requests_without_job, stats.max_in_flight, stats.max_processing) == (1, 4, 1)
    assert (stats.in_flight, stats.completed_total) == (0, 4)


def test_counters_reset_keeps_running_requests_as_current_load() -> None:
    counters = SimCounters()
    counters.record_arrival("a")
    counters.enter()
    counters.start_generation(5)
    counters.enter()
    counters.leave(completed=False)
    counters.reset()
    stats = counters.stats()
    assert (stats.requests_total, stats.requests_by_job, stats.cancelled_total) == (0, {}, 0)
    assert (stats.in_flight, stats.processing, stats.max_in_flight) == (1, 1, 1)


async def test_slot_pool_serves_waiters_in_arrival_order() -> None:
    pool = SlotPool(1)
    first = await pool.acquire()
    order: list[str] = []

    async def wait_then_record(name: str) -> None:
        slot = await pool.acquire()
        order.append(name)
        pool.release(slot)

    async with asyncio.TaskGroup() as group:
        for name in ("b", "c", "d"):
            group.create_task(wait_then_record(name))
            await asyncio.sleep(0)
        assert pool.waiting == 3
        pool.release(first)
    assert order == ["b", "c", "d"]
    assert pool.busy == frozenset()


async def test_slot_pool_cancelled_waiter_leaves_no_trace() -> None:
    pool = SlotPool(1)
    held = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.waiting == 0
    pool.release(held)
    assert await asyncio.wait_for(pool.acquire(), timeout=1) == held
