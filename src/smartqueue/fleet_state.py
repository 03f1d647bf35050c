"""The fleet's live state, read once for the dispatcher and for `GET /gpus` alike.

For every GPU of the fleet file: its slots in use across every replica with the predicted end
of each job holding one, its shared breaker (with the version to compare-and-set it), what the
breaker lets a dispatcher do now, and the prober's latest snapshot. `LiveGpu.plan_gpu` turns
that into what the planner needs (smartqueue.planner, docs/scheduling.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from smartqueue.breaker import Breaker, BreakerPolicy, Gate, gate
from smartqueue.config import FleetConfig, GpuConfig, Settings
from smartqueue.fleet import FleetProber
from smartqueue.planner import PlanGpu, Speed, slot_free_times
from smartqueue.scoring import GpuSnapshot, direct_running, is_down, trusted_engine
from smartqueue.store import Store

COLD_START_S = 30.0
"""Added to every job's predicted finish on a GPU whose engine says its model is not loaded
(Ollama): loading a model takes seconds to minutes before the first token."""


@dataclass(frozen=True)
class LiveGpu:
    """One GPU as every replica sees it right now."""

    config: GpuConfig
    in_use: int
    breaker: Breaker
    breaker_version: str
    gate: Gate
    snapshot: GpuSnapshot | None
    ends: tuple[float | None, ...] = ()  # predicted end of each job holding a slot (None: unknown)

    def plan_gpu(
        self, speed: Speed, *, now: float, max_age_s: float, mean_duration_s: float
    ) -> PlanGpu:
        """The GPU as the planner sees it: whether it may take a job, when each slot frees
        (requests the engine ran beyond ours when probed, and those waiting inside it, count:
        direct traffic), its speed.

        A job whose end was not predicted counts as half done. A half-open breaker lets one
        probe job through; an unloaded model (cold start) and KV cache pressure delay every
        start on the GPU (`start_delay_s`).
        """
        engine = trusted_engine(self.snapshot, now=now, max_age_s=max_age_s)
        ours = [now + mean_duration_s / 2 if end is None else end for end in self.ends]
        direct = direct_running(self.snapshot, engine) if self.snapshot and engine else 0
        free_now, busy_until = slot_free_times(
            slots=self.config.slots,
            ours=ours,
            engine_running=len(ours) + direct,
            engine_waiting=engine.waiting if engine else None,
            mean_duration_s=mean_duration_s,
            now=now,
        )
        headroom = max(0, self.config.slots - len(ours))  # our leases: what we may send now
        if self.gate is Gate.PROBE:
            free_now, headroom = min(free_now, 1), min(headroom, 1)
        delay_s = 0.0
        if engine is not None:
            delay_s += COLD_START_S if engine.model_resident is False else 0.0
            delay_s += (engine.kv_pressure or 0.0) * mean_duration_s
        can_take = self.gate is not Gate.DENY and not is_down(self.snapshot, now=now,
                                                               max_age_s=max_age_s)  # fmt: skip
        return PlanGpu(self.config.name, can_take, free_now, busy_until, speed,
                       start_delay_s=delay_s, headroom=headroom)  # fmt: skip


async def read_fleet_state(
    fleet: FleetConfig, store: Store, prober: FleetProber, *, policy: BreakerPolicy, now: float
) -> list[LiveGpu]:
    """Every GPU of `fleet` with its shared slots, breaker and latest probe."""
    names = [gpu.name for gpu in fleet.gpus]
    running = await store.claims.running_on(names, now=now)
    breakers = await store.breakers.read(names)
    return live_gpus(fleet, running, breakers, prober, policy=policy, now=now)


def live_gpus(
    fleet: FleetConfig, running: Mapping[str, list[float | None]],
    breakers: Mapping[str, tuple[Breaker, str]], prober: FleetProber, *, policy: BreakerPolicy,
    now: float,
) -> list[LiveGpu]:  # fmt: skip
    """Every GPU of `fleet` from what was read of it: its leases' predicted ends, its breaker
    with its version, and the prober's latest snapshot."""
    return [
        LiveGpu(gpu, len(running[gpu.name]), breakers[gpu.name][0], breakers[gpu.name][1],
                gate(breakers[gpu.name][0], now=now, policy=policy),
                prober.snapshots.get(gpu.name), tuple(running[gpu.name]))
        for gpu in fleet.gpus
    ]  # fmt: skip


def breaker_policy(settings: Settings) -> BreakerPolicy:
    """The breaker thresholds in force; a probe job may run as long as any job, plus a lease."""
    return BreakerPolicy(settings.breaker_failure_threshold, settings.breaker_recovery_s,
                         probe_timeout_s=settings.job_timeout_s + settings.lease_s)  # fmt: skip
