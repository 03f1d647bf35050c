"""tests.support.sim's in-process sims: one httpx client reaches a fleet of them by URL."""

from __future__ import annotations

import httpx
import pytest

from tests.support.sim import build_sim_apps, sim_settings


async def test_mounts_route_each_fleet_url_to_its_sims_engine_or_sidecar_app() -> None:
    big = build_sim_apps(engine="llamacpp", model="big-model")
    small = build_sim_apps(engine="vllm", model="small-model", api_key="k")
    mounts = {
        **big.mounts("http://gpu-big:8080", "http://gpu-big:8090"),
        **small.mounts("http://gpu-small:8080/", "http://gpu-small:8090"),
    }
    async with httpx.AsyncClient(mounts=mounts) as fleet:
        big_models = (await fleet.get("http://gpu-big:8080/v1/models")).json()
        small_models = await fleet.get(
            "http://gpu-small:8080/v1/models", headers={"Authorization": "Bearer k"}
        )
        big_reading = (await fleet.get("http://gpu-big:8090/health")).json()
        small_settings = (await fleet.get("http://gpu-small:8090/sim/settings")).json()
    assert big_models["data"][0]["id"] == "big-model"
    assert small_models.json()["data"][0]["id"] == "small-model"
    assert big_reading["vram_total_mb"] == 24576
    assert (small_settings["engine"], small_settings["api_key"]) == ("vllm", "**********")


def test_sim_settings_match_running_sims_options() -> None:
    settings = sim_settings(engine="ollama", slots=3, profile="light-fast", fault="error")
    assert (settings.engine, settings.slots, settings.profile_name) == ("ollama", 3, "light-fast")
    assert settings.profile.tokens_per_s == 90
    assert settings.faults.mode == "error"


def test_sim_settings_refuse_command_line_only_extra_args() -> None:
    with pytest.raises(ValueError, match="extra_args"):
        sim_settings(extra_args=["--tokens-per-s=30"])
