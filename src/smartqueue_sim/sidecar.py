"""The sim's sidecar port: the draft's GPU `/health` JSON plus the fault and stats control API.

The control API lives here so it still answers while the main port refuses connections.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from smartqueue_sim.faults import FaultSettings
from smartqueue_sim.gpu import SimGpu, SimSettings
from smartqueue_sim.state import SimStats
from smartqueue_sim.telemetry import GpuReading


def build_sidecar_app(sim: SimGpu) -> FastAPI:
    """The app on the sim's sidecar port."""
    app = FastAPI(title=f"smartqueue sim {sim.settings.name} sidecar")
    app.include_router(gpu_health_router(sim))
    app.include_router(control_router(sim))
    return app


def gpu_health_router(sim: SimGpu) -> APIRouter:
    """GET /health: utilisation, VRAM and temperature that follow the sim's load."""
    router = APIRouter()

    @router.get("/health")
    async def health() -> GpuReading:
        return sim.reading()

    return router


def control_router(sim: SimGpu) -> APIRouter:
    """GET/POST /sim/faults, GET /sim/stats, POST /sim/stats/reset, GET /sim/settings."""
    router = APIRouter(prefix="/sim", tags=["control"])

    @router.get("/faults")
    async def read_faults() -> FaultSettings:
        return sim.faults

    @router.post("/faults")
    async def switch_faults(faults: FaultSettings) -> FaultSettings:
        await sim.set_faults(faults)
        return sim.faults

    @router.get("/stats")
    async def read_stats() -> SimStats:
        return sim.counters.stats()

    @router.post("/stats/reset")
    async def reset_stats() -> SimStats:
        sim.counters.reset()
        return sim.counters.stats()

    @router.get("/settings")
    async def read_settings() -> SimSettings:
        return sim.settings

    return router
