"""How long and how often each benchmark runs: the default run, or the long one (`BENCH_FULL=1`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchConfig:
    """Durations, rounds and sizes; the defaults make `make bench` a run of about 6-8 minutes."""

    workdir: Path
    full: bool = False
    rounds: int = 3
    wrk_duration_s: float = 3.0
    wrk_warmup_s: float = 1.0
    wrk_connections: int = 32
    open_loop_duration_s: float = 3.0
    commands_sample: int = 300
    latency_requests: int = 200
    payload_bytes: int = 128
    batch_jobs: int = 120
    poisson_jobs: int = 200
    other_poisson_jobs: int = 120
    sim_speed: float = 20.0
    memory_jobs: int = 1000
    scheduling_rounds: int = 3
    other_scheduling_rounds: int = 2
    scheduling_fleets: tuple[str, ...] = ("heterogeneous", "skewed", "identical")
    every_scenario_on_every_fleet: bool = False
    profile_duration_s: float = 8.0
    profile_dir: Path = Path("docs/profiles")

    @classmethod
    def from_env(cls, workdir: Path) -> BenchConfig:
        """The default settings, or the long ones when BENCH_FULL is set to anything but 0."""
        if os.environ.get("BENCH_FULL", "0") not in ("", "0"):
            return cls.full_settings(workdir)
        return cls(workdir=workdir)

    @classmethod
    def full_settings(cls, workdir: Path) -> BenchConfig:
        """Five rounds of longer runs, larger batches, every scenario on every fleet."""
        return cls(
            workdir=workdir,
            full=True,
            rounds=5,
            wrk_duration_s=10.0,
            wrk_warmup_s=2.0,
            open_loop_duration_s=10.0,
            commands_sample=500,
            latency_requests=400,
            batch_jobs=300,
            poisson_jobs=300,
            other_poisson_jobs=200,
            sim_speed=10.0,
            scheduling_rounds=5,
            other_scheduling_rounds=3,
            every_scenario_on_every_fleet=True,
            profile_duration_s=15.0,
        )

    @property
    def mode(self) -> str:
        """How BENCHMARKS.md names the settings."""
        return "BENCH_FULL=1 (long run)" if self.full else "default"
