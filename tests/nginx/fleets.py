"""Fleets for the Nginx tests, built around stand-in servers on loopback."""

from __future__ import annotations

from smartqueue.config import Engine, FleetConfig, GpuConfig


def gpu(name: str, url: str) -> GpuConfig:
    """A GPU entry whose server is at `url` (a stand-in or a port nothing listens on)."""
    return GpuConfig(
        name=name,
        url=url,
        sidecar_url=url,
        engine=Engine.LLAMACPP,
        model=f"model-{name}",
        slots=1,
        vram_total_mb=1024,
    )


def fleet_of(urls: dict[str, str], routes: dict[str, list[str]]) -> FleetConfig:
    """A fleet of GPUs named after `urls`' keys, with `routes`."""
    return FleetConfig(gpus=[gpu(name, url) for name, url in urls.items()], routes=routes)
