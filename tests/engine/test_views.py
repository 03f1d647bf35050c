"""What the engine shows: live consumers with heartbeats, GPUs with health, breakers, slots."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from smartqueue.config import Settings
from tests.engine.conftest import (
    fleet_for,
    gpu_views,
    service,
    slow_chat,
    submit,
    wait_gpus_down,
    wait_status,
    wait_terminal,
)
from tests.support.sim import InProcessSim
from tests.support.waiting import wait_until


async def _consumers(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/consumers", headers={"Authorization": "Bearer t"})  # admin
    assert response.status_code == 200, response.text
    consumers: list[dict[str, Any]] = response.json()["consumers"]
    return consumers


async def test_consumers_are_listed_with_fresh_heartbeats_and_vanish_once_the_engine_stops(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(a={"slots": 2, "speed": 1.0}, b={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["a", "b"]}, {"a": 2, "b": 1})
    settings = engine_settings(heartbeat_interval_s=0.1, consumer_ttl_s=2.0, shutdown_grace_s=0.2)
    async with service(settings, fleet) as client:
        job_id = await submit(client, slow_chat(40))
        await wait_status(client, job_id, {"processing"})

        async def all_listed_one_running() -> list[dict[str, Any]] | None:
            consumers = await _consumers(client)
            running = any(c["current_job"] == job_id for c in consumers)
            return consumers if running and len(consumers) == 3 else None

        live = await wait_until(all_listed_one_running, timeout_s=5,
                                what="one consumer per slot, one running the job")  # fmt: skip
        seen_at = time.time()
    async with service(engine_settings(consumers=0, consumer_ttl_s=2.0), fleet) as api_only:

        async def none_left() -> bool:
            return not await _consumers(api_only)

        await wait_until(none_left, timeout_s=settings.consumer_ttl_s + 2,
                         what="the stopped engine's consumers to vanish")  # fmt: skip

    assert len({c["replica"] for c in live}) == 1, live
    assert all(seen_at - c["last_heartbeat"] < settings.consumer_ttl_s for c in live), live
    [running] = [c for c in live if c["current_job"] == job_id]
    assert running["state"] == "running"


async def test_gpus_show_live_health_breaker_state_and_slots_in_use(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(busy={"slots": 2, "speed": 1.0}, down={"slots": 1}, failing={"slots": 1})
    gpus["down"].set_faults("refuse")
    gpus["failing"].set_faults("error")
    routes = {"default": ["busy"], "spare": ["down"], "flaky": ["failing"]}
    fleet = fleet_for(gpus, routes, {"busy": 2, "down": 1, "failing": 1})
    settings = engine_settings(max_retries=10, breaker_recovery_s=30.0, shutdown_grace_s=0.2)
    async with service(settings, fleet) as client:
        await wait_gpus_down(client, ["down"])
        running = await submit(client, slow_chat(200))
        await wait_status(client, running, {"processing"})
        await submit(client, x_syslog_model="flaky")

        async def breaker_open_and_load_seen() -> dict[str, dict[str, Any]] | None:
            views = await gpu_views(client)
            opened = views["failing"]["breaker"]["state"] == "open"
            probed = ((views["busy"]["health"] or {}).get("engine") or {}).get("running") == 1
            return views if opened and probed else None

        views = await wait_until(breaker_open_and_load_seen, timeout_s=10,
                                 what="an open breaker and a probe seeing the load")  # fmt: skip

    busy, down, failing = views["busy"], views["down"], views["failing"]
    assert busy["slots_in_use"] == 1
    assert busy["breaker"]["state"] == "closed"
    assert busy["health"]["reachable"]
    assert not busy["health"]["down"]
    assert not busy["health"]["stale"]
    assert busy["health"]["sidecar"]["gpu_util_pct"] > 0, "the sidecar follows the load"
    assert busy["health"]["engine"]["running"] == 1
    assert down["health"]["down"]
    assert not down["health"]["reachable"]
    assert down["slots_in_use"] == 0
    assert failing["breaker"]["failures"] == 3
    assert "simulated" in failing["breaker"]["reason"]


async def test_gpus_show_learned_speeds_and_an_unlearned_gpu_at_the_fastest_learned_speed(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    """Completed jobs teach their GPU's speed (shared through Redis, shown by /gpus); a GPU with
    no samples of its own is planned as fast as the fastest learned one, so it gets explored."""
    gpus = sims(used={"slots": 1}, spare={"slots": 1})
    fleet = fleet_for(gpus, {"default": ["used"], "other": ["spare"]}, {"used": 1, "spare": 1})
    async with service(engine_settings(), fleet) as client:
        lengths = [8, 16, 32, 64, 8, 16, 32, 64]
        job_ids = [await submit(client, slow_chat(tokens)) for tokens in lengths]
        await wait_terminal(client, job_ids)

        async def learned() -> dict[str, dict[str, Any]] | None:
            views = await gpu_views(client)
            return views if views["used"]["speed"]["learned"] else None

        views = await wait_until(learned, timeout_s=10, what="the used GPU's speed learnt")

    used, spare = views["used"]["speed"], views["spare"]["speed"]
    assert used["samples"] >= 3
    assert 0 < used["decode_s_per_token"] < 0.025, "faster than the prior's 40 tokens/s"
    assert not spare["learned"]
    assert spare["samples"] == 0
    assert {key: spare[key] for key in ("base_s", "decode_s_per_token")} == {
        key: used[key] for key in ("base_s", "decode_s_per_token")
    }
