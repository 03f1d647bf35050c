"""The prober against in-process sims: each engine's signals as the sim serves them, and keys.

The sims run in-process (tests.support.sim.build_sim_apps): one httpx client reaches every GPU
of the fleet by URL through `SimApps.mounts`, with no process and no port.
"""

from __future__ import annotations

import httpx
import pytest

from smartqueue.config import parse_fleet
from smartqueue.fleet import FleetProber
from smartqueue.scoring import GpuSnapshot
from tests.support.sim import SimApps, build_sim_apps

URL, SIDECAR_URL = "http://gpu-a:8080", "http://gpu-a:8090"
KEY = "probe-key"


async def probe(apps: SimApps, *, engine: str, api_key_env: str | None = None) -> GpuSnapshot:
    """One probe of a one-GPU fleet whose GPU is the in-process sim `apps`."""
    gpu = {"name": "a", "url": URL, "sidecar_url": SIDECAR_URL, "engine": engine,
           "model": "sim-model", "slots": 2, "vram_total_mb": 24576,
           **({"api_key_env": api_key_env} if api_key_env else {})}  # fmt: skip
    fleet = parse_fleet({"gpus": [gpu], "routes": {"default": ["a"]}})
    async with httpx.AsyncClient(mounts=apps.mounts(URL, SIDECAR_URL)) as http:
        prober = FleetProber(fleet, http, interval_s=1.0, timeout_s=2.0)
        return await prober.probe(fleet.gpus[0])


@pytest.mark.parametrize("engine", ["llamacpp", "vllm", "ollama"])
async def test_prober_reads_an_idle_sims_signals_for_each_engine(engine: str) -> None:
    snapshot = await probe(build_sim_apps(engine=engine), engine=engine)
    assert (snapshot.reachable, snapshot.error, snapshot.unauthorised) == (True, None, False)
    assert snapshot.sidecar is not None
    assert snapshot.engine is not None
    assert not snapshot.engine.says_nothing


async def test_prober_sends_a_keyed_gpus_key_and_a_keyed_sim_accepts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SQ_TEST_PROBE_KEY", KEY)
    apps = build_sim_apps(engine="llamacpp", api_key=KEY)
    snapshot = await probe(apps, engine="llamacpp", api_key_env="SQ_TEST_PROBE_KEY")
    assert (snapshot.reachable, snapshot.unauthorised) == (True, False)
    assert snapshot.engine is not None
    assert not snapshot.engine.says_nothing


async def test_prober_without_the_key_finds_a_keyed_sim_unauthorised() -> None:
    snapshot = await probe(build_sim_apps(engine="vllm", api_key=KEY), engine="vllm")
    assert snapshot.unauthorised
