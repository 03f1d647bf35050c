"""Live GPU health: concurrent probes of every sidecar and engine, in a background task.

Each probe reads the sidecar's `/health?gpu=N` JSON and the engine's own signals through its
adapter (`smartqueue.engines`): the health path first, then the signal paths (llama.cpp
`/metrics` and `/slots`, vLLM `/metrics`; Ollama's `/api/ps` is both). A keyed GPU's engine
probes carry `Authorization: Bearer <key>` as job calls do; the sidecar never gets the key (it
is the engine's secret, and the sidecar asks for none). A 401/403 marks the probe unauthorised,
not the GPU down. One slow host delays no other: every probe has its own timeout and they run
concurrently. After each round the prober records the engine's numbers next to smartqueue's
own in-flight count, when it has a reader for it, and flags engines whose numbers froze.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from smartqueue.config import FleetConfig, GpuConfig
from smartqueue.engines import EngineAdapter, EngineView, adapter_for
from smartqueue.scoring import (
    FROZEN_AFTER_PROBES,
    GpuSnapshot,
    ProbeRecord,
    SidecarMetrics,
    is_frozen,
)
from smartqueue.stopping import wait_or_stop

log = logging.getLogger(__name__)

UNAUTHORISED = (401, 403)

InFlightReader = Callable[[list[str]], Awaitable[dict[str, int]]]
"""smartqueue's own jobs in flight per GPU name, across replicas."""


def parse_sidecar(document: Any) -> SidecarMetrics | None:
    """The sidecar's /health JSON, or None when it lacks a number."""
    try:
        return SidecarMetrics(
            gpu_util_pct=float(document["gpu_util_pct"]),
            vram_used_mb=float(document["vram_used_mb"]),
            vram_total_mb=float(document["vram_total_mb"]),
            temp_c=float(document["temp_c"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def api_keys(fleet: FleetConfig) -> dict[str, str]:
    """Each keyed GPU's key, read from the env var its fleet entry names (as job calls do)."""
    keys = {gpu.name: os.environ.get(gpu.api_key_env, "") for gpu in fleet.gpus if gpu.api_key_env}
    return {name: key for name, key in keys.items() if key}


@dataclass(frozen=True)
class EngineProbe:
    """What the engine's endpoints answered."""

    reachable: bool
    view: EngineView | None = None
    error: str | None = None
    unauthorised: bool = False


class FleetProber:
    """Keeps the latest snapshot of every GPU, refreshed every `interval_s`."""

    def __init__(
        self,
        fleet: FleetConfig,
        http: httpx.AsyncClient,
        *,
        interval_s: float,
        timeout_s: float,
        in_flight: InFlightReader | None = None,
    ) -> None:
        self.fleet = fleet
        self.http = http
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.in_flight = in_flight
        self.api_keys = api_keys(fleet)
        self.snapshots: dict[str, GpuSnapshot] = {}
        self.history: dict[str, deque[ProbeRecord]] = {
            gpu.name: deque(maxlen=FROZEN_AFTER_PROBES) for gpu in fleet.gpus
        }
        self.probed = asyncio.Event()

    @property
    def max_age_s(self) -> float:
        """Snapshots older than three intervals count as unknown."""
        return 3 * self.interval_s + self.timeout_s

    async def run(self, stop: asyncio.Event) -> None:
        """Probe every GPU each interval until `stop` is set."""
        while not stop.is_set():
            await self.probe_all()
            await wait_or_stop(stop, self.interval_s)

    async def probe_all(self) -> None:
        """Probe every GPU concurrently, flag frozen engines and keep the results."""
        names = [gpu.name for gpu in self.fleet.gpus]
        snapshots, in_flight = await asyncio.gather(
            asyncio.gather(*(self.probe(gpu) for gpu in self.fleet.gpus)),
            self._own_in_flight(names),
        )
        for name, snapshot in zip(names, snapshots, strict=True):
            self.snapshots[name] = self._flag_frozen(name, snapshot, in_flight)
        self.probed.set()

    async def probe(self, gpu: GpuConfig) -> GpuSnapshot:
        """One GPU's sidecar and engine, each bounded by the probe timeout."""
        try:
            sidecar, engine = await asyncio.gather(self._sidecar(gpu), self._engine(gpu))
        except Exception as error:  # a probe must never take the engine down with it
            log.exception("probe failed", extra={"gpu": gpu.name})
            return GpuSnapshot(time.time(), False, error=f"probe failed: {error!r}")
        return GpuSnapshot(time.time(), engine.reachable, sidecar, engine.view, engine.error,
                           unauthorised=engine.unauthorised)  # fmt: skip

    def _flag_frozen(
        self, name: str, snapshot: GpuSnapshot, in_flight: dict[str, int] | None
    ) -> GpuSnapshot:
        if in_flight is None or name not in in_flight:
            return snapshot
        numbers = snapshot.engine.queue_numbers if snapshot.engine else None
        self.history[name].append(ProbeRecord(numbers, in_flight[name]))
        return replace(
            snapshot, frozen=is_frozen(self.history[name]), own_in_flight=in_flight[name]
        )

    async def _own_in_flight(self, names: list[str]) -> dict[str, int] | None:
        if self.in_flight is None:
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.in_flight(names)
        except Exception:  # no count this round: the frozen check waits for the next one
            log.warning("in-flight count unavailable for the frozen-metrics check")
            return None

    def _engine_headers(self, gpu: GpuConfig) -> dict[str, str]:
        key = self.api_keys.get(gpu.name)
        return {"authorization": f"Bearer {key}"} if key else {}

    async def _sidecar(self, gpu: GpuConfig) -> SidecarMetrics | None:
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.http.get(
                    gpu.sidecar_url + "/health", params={"gpu": gpu.sidecar_gpu},
                    timeout=self.timeout_s,
                )  # fmt: skip
                if response.status_code != 200:
                    return None
                metrics = parse_sidecar(response.json())
                if metrics is not None and metrics.vram_total_mb <= 0:
                    metrics = replace(metrics, vram_total_mb=gpu.vram_total_mb)
                return metrics
        except (httpx.HTTPError, TimeoutError, ValueError):
            return None

    async def _engine(self, gpu: GpuConfig) -> EngineProbe:
        adapter = adapter_for(gpu.engine)
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._read_engine(gpu, adapter)
        except (httpx.HTTPError, TimeoutError) as error:
            return EngineProbe(False, error=f"{type(error).__name__}: {error}".rstrip(": "))

    async def _read_engine(self, gpu: GpuConfig, adapter: EngineAdapter) -> EngineProbe:
        health = await self._get(gpu, adapter.health_path)
        if health.status_code in UNAUTHORISED:
            return EngineProbe(True, error=_refusal(adapter.health_path, health), unauthorised=True)
        if health.status_code != 200:
            return EngineProbe(False, error=f"{adapter.health_path} answered {health.status_code}")
        paths = [path for path in adapter.signal_paths if path != adapter.health_path]
        answers = await asyncio.gather(*(self._get(gpu, path) for path in paths))
        bodies = {path: answer.text for path, answer in zip(paths, answers, strict=True)
                  if answer.status_code == 200}  # fmt: skip
        bodies[adapter.health_path] = health.text
        view = adapter.read(bodies, gpu.model, time.time())
        refused = [_refusal(path, answer) for path, answer in zip(paths, answers, strict=True)
                   if answer.status_code in UNAUTHORISED]  # fmt: skip
        return EngineProbe(True, None if view.says_nothing else view,
                           "; ".join(refused) or None, unauthorised=bool(refused))  # fmt: skip

    async def _get(self, gpu: GpuConfig, path: str) -> httpx.Response:
        return await self.http.get(
            gpu.url + path, headers=self._engine_headers(gpu), timeout=self.timeout_s
        )


def _refusal(path: str, response: httpx.Response) -> str:
    return f"probe unauthorised: {path} answered {response.status_code}"
