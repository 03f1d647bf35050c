"""How long and how often each benchmark runs: the full run, or a quick check (`BENCH_QUICK=1`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchConfig:
    """Durations, rounds and sizes; `quick()` trades precision for a run of about a minute."""

    quick: bool
    workdir: Path
    rounds: int = 5
    wrk_duration_s: float = 10.0
    wrk_connections: int = 32
    open_loop_duration_s: float = 10.0
    commands_sample: int = 500
    latency_requests: int = 400
    payload_bytes: int = 128
    batch_jobs: int = 300
    poisson_jobs: int = 250
    sim_speed: float = 10.0
    memory_jobs: int = 1000
    scheduling_rounds: int = 3
    scheduling_fleets: tuple[str, ...] = ("heterogeneous", "skewed", "identical")

    @classmethod
    def from_env(cls, workdir: Path) -> BenchConfig:
        """Full settings, or quick ones when BENCH_QUICK is set to anything but 0 or empty."""
        if os.environ.get("BENCH_QUICK", "0") not in ("", "0"):
            return cls.quick_settings(workdir)
        return cls(quick=False, workdir=workdir)

    @classmethod
    def quick_settings(cls, workdir: Path) -> BenchConfig:
        """Two rounds of a few seconds each, smaller batches."""
        return cls(
            quick=True,
            workdir=workdir,
            rounds=2,
            wrk_duration_s=4.0,
            open_loop_duration_s=4.0,
            commands_sample=200,
            latency_requests=100,
            batch_jobs=90,
            poisson_jobs=90,
            scheduling_rounds=2,
        )
