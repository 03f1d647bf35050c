"""The simulated fleets the benchmarks run on, started by `smartqueue sim-fleet` on free ports.

- heterogeneous: the draft's `deploy/fleet.local.yaml` with `deploy/sim-profiles.yaml` (three GPUs
  of different speed and slots, every route of the file kept);
- skewed: one fast 4-slot GPU and two slow 1-slot GPUs;
- identical: three GPUs with the same profile and 2 slots each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.procs import LOAD_CPU, LOOPBACK, Processes, Sim, free_port
from smartqueue_sim.fleet import ProfileChoice
from smartqueue_sim.latency import LatencyProfile

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@dataclass(frozen=True)
class GpuSpec:
    """One simulated GPU: fleet-file fields and its latency profile choice."""

    name: str
    slots: int
    profile: ProfileChoice
    engine: str = "llamacpp"
    model: str = "sim-model"
    vram_total_mb: int = 24576

    @property
    def latency(self) -> LatencyProfile:
        """The resolved latency profile (speed 1)."""
        return self.profile.resolve()


@dataclass(frozen=True)
class FleetSpec:
    """A named fleet: its GPUs and its routes (`default` over every GPU at least)."""

    name: str
    gpus: tuple[GpuSpec, ...]
    routes: dict[str, list[str]]


def heterogeneous() -> FleetSpec:
    """The draft's local fleet with its sim profiles."""
    document = yaml.safe_load((DEPLOY / "fleet.local.yaml").read_text(encoding="utf-8"))
    profiles = yaml.safe_load((DEPLOY / "sim-profiles.yaml").read_text(encoding="utf-8")) or {}
    gpus = []
    for gpu in document["gpus"]:
        choice = profiles.get(gpu["name"], "default")
        choice = {"profile": choice} if isinstance(choice, str) else choice
        gpus.append(
            GpuSpec(
                name=gpu["name"],
                slots=gpu["slots"],
                engine=gpu["engine"],
                model=gpu["model"],
                vram_total_mb=gpu["vram_total_mb"],
                profile=ProfileChoice.model_validate(choice),
            )
        )
    return FleetSpec("heterogeneous", tuple(gpus), document["routes"])


def skewed() -> FleetSpec:
    """One fast GPU with most slots, two slow single-slot GPUs."""
    slow = ProfileChoice(profile="dense-code", overrides={"tokens_per_s": 12})
    gpus = (
        GpuSpec("fast", 4, ProfileChoice(profile="moe-fast"), vram_total_mb=65536),  # 28 GB weights
        GpuSpec("slow1", 1, slow),
        GpuSpec("slow2", 1, slow),
    )
    return FleetSpec("skewed", gpus, {"default": [gpu.name for gpu in gpus]})


def identical() -> FleetSpec:
    """Three GPUs alike."""
    gpus = tuple(GpuSpec(f"gpu{i}", 2, ProfileChoice(profile="default")) for i in (1, 2, 3))
    return FleetSpec("identical", gpus, {"default": [gpu.name for gpu in gpus]})


FLEETS = {"heterogeneous": heterogeneous, "skewed": skewed, "identical": identical}


def write_fleet_files(spec: FleetSpec, directory: Path) -> Path:
    """fleet.yaml on free loopback ports, with sim-profiles.yaml beside it; the fleet path."""
    directory.mkdir(parents=True, exist_ok=True)
    gpus: list[dict[str, Any]] = []
    for gpu in spec.gpus:
        gpus.append(
            {
                "name": gpu.name,
                "url": f"http://{LOOPBACK}:{free_port()}",
                "sidecar_url": f"http://{LOOPBACK}:{free_port()}",
                "engine": gpu.engine,
                "model": gpu.model,
                "slots": gpu.slots,
                "vram_total_mb": gpu.vram_total_mb,
            }
        )
    profiles = {gpu.name: gpu.profile.model_dump() for gpu in spec.gpus}
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump({"gpus": gpus, "routes": spec.routes}, sort_keys=False))
    (directory / "sim-profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    return path


def start_copies(
    procs: Processes, spec: FleetSpec, cpus: Mapping[str, str], *, speed: float
) -> dict[str, tuple[Path, dict[str, Sim]]]:
    """Copies of a fleet on their own ports, one `sim-fleet` each on its core, started together.

    `cpus` maps each copy's name to its core; the result maps it to its fleet path and sims.
    """
    names = {copy: f"{spec.name}-{copy}" if copy else spec.name for copy in cpus}
    files = {
        copy: write_fleet_files(spec, procs.workdir / f"fleet-{name}")
        for copy, name in names.items()
    }
    fleets = procs.sim_fleets(
        {f"sims-{names[copy]}": (files[copy], cpu) for copy, cpu in cpus.items()}, speed=speed
    )
    return {copy: (files[copy], fleets[f"sims-{names[copy]}"]) for copy in cpus}


def start_fleet(procs: Processes, spec: FleetSpec, *, speed: float) -> tuple[Path, dict[str, Sim]]:
    """Write the fleet's files and run `sim-fleet` for it; the fleet path and the sims by name."""
    return start_copies(procs, spec, {"": LOAD_CPU}, speed=speed)[""]
