"""A whole deployment on loopback for end-to-end tests: sim GPUs, `smartqueue serve`, nginx.

Every part is a real process the test starts on free ports: `smartqueue-sim gpu` per GPU, one
`smartqueue serve` on the session's redis-server (with the test's key prefix and fast timings),
and the real nginx running the config rendered for that fleet with the service as its queue.
Clients talk to nginx over real HTTP, as they would in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from smartqueue.config import FleetConfig, Settings, parse_fleet
from tests.support.service import ServiceHandle
from tests.support.sim import SimHandle
from tests.support.waiting import wait_until

CLIENT_TIMEOUT_S = 30.0
SIM_SPEED = 50.0


@dataclass(frozen=True)
class GpuSpec:
    """One simulated GPU of a test fleet; its served model is `model-<name>`."""

    engine: str = "llamacpp"
    slots: int = 2
    fault: str = "none"


ADMIN_TOKEN = "e2e-admin-token"


def fast_settings(*, redis_url: str, key_prefix: str) -> Settings:
    """Service settings for tests: quick probes, breakers, retries and maintenance."""
    return Settings(
        redis_url=redis_url, key_prefix=key_prefix, probe_interval_s=0.2, probe_timeout_s=0.5,
        breaker_recovery_s=1.0, retry_base_s=0.05, retry_cap_s=0.5,
        maintenance_interval_s=0.05, job_timeout_s=20.0, shutdown_grace_s=5.0,
        admin_token=ADMIN_TOKEN, owner_secret="e2e-owner-secret",
    )  # fmt: skip


def fleet_of(
    sims: dict[str, SimHandle], specs: dict[str, GpuSpec], routes: dict[str, list[str]]
) -> FleetConfig:
    """The fleet file describing running sims, with `routes`."""
    gpus = [
        {"name": name, "url": sim.url, "sidecar_url": sim.sidecar_url,
         "engine": specs[name].engine, "model": f"model-{name}", "slots": specs[name].slots,
         "vram_total_mb": 24576}
        for name, sim in sims.items()
    ]  # fmt: skip
    return parse_fleet({"gpus": gpus, "routes": routes})


@dataclass(frozen=True)
class Deployment:
    """A running deployment: nginx in front, the service behind it, the sims by name."""

    nginx_url: str
    service: ServiceHandle
    sims: dict[str, SimHandle]
    fleet: FleetConfig
    http: httpx.AsyncClient = field(repr=False)

    def openai(
        self, *, route: str, api_key: str = "unused", max_retries: int = 0
    ) -> openai.AsyncOpenAI:
        """The real openai client on nginx, `X-Syslog-Model: route`; no retries unless asked."""
        return openai.AsyncOpenAI(
            base_url=f"{self.nginx_url}/v1", api_key=api_key, max_retries=max_retries,
            timeout=CLIENT_TIMEOUT_S, default_headers={"X-Syslog-Model": route},
        )  # fmt: skip

    def address(self, gpu: str) -> str:
        """`host:port` nginx connects to for `gpu` (as X-Routed-To names it)."""
        parts = urlsplit(self.sims[gpu].url)
        return f"{parts.hostname}:{parts.port}"

    def calls(self, gpu: str) -> int:
        """Inference requests `gpu` has received so far."""
        total: int = self.sims[gpu].stats()["requests_total"]
        return total

    async def service_json(self, path: str) -> Any:
        """GET `path` on the service directly (not through nginx), as the admin."""
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        response = await self.http.get(f"{self.service.url}{path}", headers=admin)
        assert response.status_code == 200, response.text
        return response.json()

    async def submissions(self) -> int:
        """Requests the service has taken into its queue (its submissions counter)."""
        response = await self.http.get(f"{self.service.url}/metrics")
        families = text_string_to_metric_families(response.text)
        return int(sum(sample.value for family in families for sample in family.samples
                       if sample.name == "smartqueue_submissions_total"))  # fmt: skip

    async def wait_queued(self, count: int = 1) -> None:
        """Wait until `count` jobs wait in the service's queue."""

        async def queued() -> bool:
            overview = await self.service_json("/status")
            return bool(overview["depth"]["total"] >= count)

        await wait_until(queued, timeout_s=15, what=f"{count} job(s) queued in smartqueue")
