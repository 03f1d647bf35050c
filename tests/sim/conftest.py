"""Sims for the simulator's own tests: in-process (a SimGpu, its two apps and httpx clients on
them) for most, and the few real processes that the socket tests need, started together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from smartqueue.config import Engine
from smartqueue_sim.gpu import SimGpu, SimSettings
from tests.support.sim import SimHandle, build_sim_apps, running_sims

PROCESS_API_KEY = "process-key"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self.now_s += seconds


@dataclass
class AppSim:
    """One in-process sim: its state, a client on the main app and one on the sidecar."""

    sim: SimGpu
    main: httpx.AsyncClient
    sidecar: httpx.AsyncClient
    clock: FakeClock


@pytest.fixture
async def make_app_sim() -> AsyncIterator[Callable[..., AppSim]]:
    """Build in-process sims from SimSettings fields (speed 100 unless given)."""
    clients: list[httpx.AsyncClient] = []

    def build(**fields: object) -> AppSim:
        settings = SimSettings.model_validate({"speed": 100.0, **fields})
        clock = FakeClock()
        apps = build_sim_apps(settings, clock=clock)
        main = apps.engine_client("http://gpu", timeout=10)
        sidecar = apps.sidecar_client("http://sidecar", timeout=10)
        clients.extend((main, sidecar))
        return AppSim(sim=apps.sim, main=main, sidecar=sidecar, clock=clock)

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
def llamacpp_sim(make_app_sim: Callable[..., AppSim]) -> AppSim:
    """A llama.cpp sim with 2 slots."""
    return make_app_sim(engine=Engine.LLAMACPP, slots=2)


@pytest.fixture(scope="package")
def sim_processes() -> Iterator[dict[str, SimHandle]]:
    """The real sim processes of tests/sim, spawned together so their start-ups overlap.

    `shared` (llama.cpp, 2 slots, 100x) serves the socket tests one after another; each other one
    is for a single test: `refusing` starts under `refuse`, `localhost` binds a host name, and
    `keyed` wants PROCESS_API_KEY.
    """
    with running_sims(
        shared={"engine": "llamacpp", "model": "sim-model", "slots": 2, "speed": 100.0, "seed": 3},
        refusing={"fault": "refuse"},
        localhost={"host": "localhost"},
        keyed={"api_key": PROCESS_API_KEY},
    ) as sims:
        yield sims
