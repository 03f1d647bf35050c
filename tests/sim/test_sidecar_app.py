"""The sidecar in-process: GPU numbers that follow the load, and the control API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from smartqueue_sim.completions import CompletionKind, parse_completion_request
from smartqueue_sim.telemetry import IDLE_TEMP_C
from tests.sim.conftest import AppSim

CHAT = {"model": "sim-model", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 30}


async def test_gpu_health_follows_busy_slots_and_active_contexts(
    make_app_sim: Callable[..., AppSim],
) -> None:
    sim = make_app_sim(slots=2, speed=10.0, vram_total_mb=20000)
    idle = (await sim.sidecar.get("/health")).json()
    request = asyncio.create_task(sim.main.post("/v1/chat/completions", json=CHAT))
    async with asyncio.timeout(5):
        while sim.sim.counters.processing == 0:  # noqa: ASYNC110 - plain counter, no event
            await asyncio.sleep(0.002)
    busy = (await sim.sidecar.get("/health")).json()
    await request
    after = (await sim.sidecar.get("/health")).json()
    assert set(idle) == {"gpu_util_pct", "vram_used_mb", "vram_total_mb", "temp_c"}
    assert idle["gpu_util_pct"] == after["gpu_util_pct"] == 0
    assert busy["gpu_util_pct"] > 0
    assert busy["vram_used_mb"] > idle["vram_used_mb"] == after["vram_used_mb"]
    assert busy["vram_total_mb"] == 20000


async def test_gpu_temperature_rises_under_load_and_falls_when_idle(
    make_app_sim: Callable[..., AppSim],
) -> None:
    sim = make_app_sim(slots=1, speed=1.0)
    generation = sim.sim.generate(sim.sim.plan(parse_completion_request(CompletionKind.CHAT, CHAT)))
    await anext(generation)  # holds the slot: the GPU is busy from here
    sim.clock.advance(120.0)
    hot = (await sim.sidecar.get("/health")).json()["temp_c"]
    await generation.aclose()
    sim.clock.advance(120.0)
    cooled = (await sim.sidecar.get("/health")).json()["temp_c"]
    assert hot > IDLE_TEMP_C + 20
    assert IDLE_TEMP_C < cooled < hot - 20


async def test_faults_round_trip_through_the_control_api(llamacpp_sim: AppSim) -> None:
    initial = (await llamacpp_sim.sidecar.get("/sim/faults")).json()
    switched = await llamacpp_sim.sidecar.post(
        "/sim/faults", json={"mode": "rate_limit", "retry_after_s": 7}
    )
    current = (await llamacpp_sim.sidecar.get("/sim/faults")).json()
    assert initial["mode"] == "none"
    assert switched.json() == current
    assert (current["mode"], current["retry_after_s"]) == ("rate_limit", 7)


async def test_unknown_fault_mode_is_rejected_and_the_old_one_kept(llamacpp_sim: AppSim) -> None:
    await llamacpp_sim.sidecar.post("/sim/faults", json={"mode": "error"})
    response = await llamacpp_sim.sidecar.post("/sim/faults", json={"mode": "meteor"})
    assert response.status_code == 422
    assert (await llamacpp_sim.sidecar.get("/sim/faults")).json()["mode"] == "error"


async def test_error_rate_hits_about_its_share_of_requests(
    make_app_sim: Callable[..., AppSim],
) -> None:
    sim = make_app_sim(speed=1000.0, slots=8)
    await sim.sidecar.post("/sim/faults", json={"mode": "error", "rate": 0.3})
    payload = {**CHAT, "max_tokens": 1}
    responses = [await sim.main.post("/v1/chat/completions", json=payload) for _ in range(200)]
    errors = [response for response in responses if response.status_code == 500]
    assert 30 <= len(errors) <= 90
    assert errors[0].json()["error"]["type"] == "server_error"
    stats = (await sim.sidecar.get("/sim/stats")).json()
    assert stats["faults_injected_total"] == len(errors)


async def test_stats_reset_clears_totals(llamacpp_sim: AppSim) -> None:
    headers = {"X-Request-Id": "job-1"}
    payload = {**CHAT, "max_tokens": 1}
    await llamacpp_sim.main.post("/v1/chat/completions", json=payload, headers=headers)
    before = (await llamacpp_sim.sidecar.get("/sim/stats")).json()
    after = (await llamacpp_sim.sidecar.post("/sim/stats/reset")).json()
    assert before["requests_by_job"] == {"job-1": 1}
    assert (after["requests_total"], after["requests_by_job"], after["max_in_flight"]) == (0, {}, 0)


async def test_settings_endpoint_reports_the_sim_configuration(
    make_app_sim: Callable[..., AppSim],
) -> None:
    sim = make_app_sim(name="gpu-a", slots=3)
    settings = (await sim.sidecar.get("/sim/settings")).json()
    assert (settings["name"], settings["slots"], settings["speed"]) == ("gpu-a", 3, 100.0)
