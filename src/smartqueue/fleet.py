"""Live GPU health: concurrent probes of every sidecar and engine, in a background task.

Each probe reads the sidecar's /health JSON and the engine's own signals:
llama.cpp `/health` + `/metrics` (requests_processing / requests_deferred), vLLM `/health` +
`/metrics` (num_requests_running / num_requests_waiting / kv_cache_usage_perc), Ollama
`/api/ps`, a generic OpenAI server `/v1/models`. One slow host delays no other: every probe has
its own timeout and they run concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from smartqueue.config import Engine, FleetConfig, GpuConfig
from smartqueue.scoring import EngineMetrics, GpuSnapshot, SidecarMetrics
from smartqueue.stopping import wait_or_stop

log = logging.getLogger(__name__)

HEALTH_PATH = {
    Engine.LLAMACPP: "/health",
    Engine.VLLM: "/health",
    Engine.OLLAMA: "/api/ps",
    Engine.OPENAI: "/v1/models",
}
RUNNING = ("llamacpp:requests_processing", "vllm:num_requests_running")
WAITING = ("llamacpp:requests_deferred", "vllm:num_requests_waiting")
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


def parse_prometheus(text: str) -> EngineMetrics:
    """Engine queue numbers from Prometheus text (llama.cpp and vLLM names)."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    running = next((values[name] for name in RUNNING if name in values), None)
    waiting = next((values[name] for name in WAITING if name in values), None)
    kv = next((values[name] for name in KV_CACHE if name in values), None)
    return EngineMetrics(
        running=int(running) if running is not None else None,
        waiting=int(waiting) if waiting is not None else None,
        kv_cache_pct=100.0 * kv if kv is not None else None,
    )


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


class FleetProber:
    """Keeps the latest snapshot of every GPU, refreshed every `interval_s`."""

    def __init__(
        self, fleet: FleetConfig, http: httpx.AsyncClient, *, interval_s: float, timeout_s: float
    ) -> None:
        self.fleet = fleet
        self.http = http
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.snapshots: dict[str, GpuSnapshot] = {}
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
        """Probe every GPU concurrently and keep the results."""
        snapshots = await asyncio.gather(*(self.probe(gpu) for gpu in self.fleet.gpus))
        for gpu, snapshot in zip(self.fleet.gpus, snapshots, strict=True):
            self.snapshots[gpu.name] = snapshot
        self.probed.set()

    async def probe(self, gpu: GpuConfig) -> GpuSnapshot:
        """One GPU's sidecar and engine, each bounded by the probe timeout."""
        try:
            sidecar, engine = await asyncio.gather(self._sidecar(gpu), self._engine(gpu))
        except Exception as error:  # a probe must never take the engine down with it
            log.exception("probe failed", extra={"gpu": gpu.name})
            return GpuSnapshot(time.time(), False, error=f"probe failed: {error!r}")
        reachable, metrics, error_text = engine
        return GpuSnapshot(time.time(), reachable, sidecar, metrics, error_text)

    async def _get(self, url: str) -> httpx.Response:
        return await self.http.get(url, timeout=self.timeout_s)

    async def _sidecar(self, gpu: GpuConfig) -> SidecarMetrics | None:
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._get(gpu.sidecar_url + "/health")
                if response.status_code != 200:
                    return None
                metrics = parse_sidecar(response.json())
                if metrics is not None and metrics.vram_total_mb <= 0:
                    metrics = replace(metrics, vram_total_mb=gpu.vram_total_mb)
                return metrics
        except (httpx.HTTPError, TimeoutError, ValueError):
            return None

    async def _engine(self, gpu: GpuConfig) -> tuple[bool, EngineMetrics | None, str | None]:
        try:
            async with asyncio.timeout(self.timeout_s):
                health = await self._get(gpu.url + HEALTH_PATH[gpu.engine])
                if health.status_code != 200:
                    return False, None, f"{HEALTH_PATH[gpu.engine]} answered {health.status_code}"
                return True, await self._engine_metrics(gpu), None
        except (httpx.HTTPError, TimeoutError) as error:
            return False, None, f"{type(error).__name__}: {error}".rstrip(": ")

    async def _engine_metrics(self, gpu: GpuConfig) -> EngineMetrics | None:
        if gpu.engine not in (Engine.LLAMACPP, Engine.VLLM):
            return None
        response = await self._get(gpu.url + "/metrics")
        if response.status_code != 200:
            return None
        try:
            return parse_prometheus(response.text)
        except (ValueError, OverflowError):  # unparsable, or +Inf/NaN where a count belongs
            return None
