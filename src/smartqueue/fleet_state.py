"""The fleet's live state, read once for the dispatcher and for `GET /gpus` alike.

For every GPU of the fleet file: its slots in use across every replica, its shared breaker
(with the version to compare-and-set it), what the breaker lets a dispatcher do now, and the
prober's latest snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartqueue.breaker import Breaker, BreakerPolicy, Gate, gate
from smartqueue.config import FleetConfig, GpuConfig, Settings
from smartqueue.fleet import FleetProber
from smartqueue.scoring import GpuSnapshot, GpuState
from smartqueue.store import Store


@dataclass(frozen=True)
class LiveGpu:
    """One GPU as every replica sees it right now."""

    config: GpuConfig
    in_use: int
    breaker: Breaker
    breaker_version: str
    gate: Gate
    snapshot: GpuSnapshot | None

    def planner_state(self) -> GpuState:
        """What the (pure) planner needs of this GPU."""
        return GpuState(self.config.name, self.config.slots, self.in_use,
                        self.gate is not Gate.DENY, self.snapshot)  # fmt: skip


async def read_fleet_state(
    fleet: FleetConfig, store: Store, prober: FleetProber, *, policy: BreakerPolicy, now: float
) -> list[LiveGpu]:
    """Every GPU of `fleet` with its shared slots, breaker and latest probe."""
    names = [gpu.name for gpu in fleet.gpus]
    in_use = await store.claims.slots_in_use(names, now=now)
    breakers = await store.breakers.read(names)
    return [
        LiveGpu(gpu, in_use[gpu.name], breakers[gpu.name][0], breakers[gpu.name][1],
                gate(breakers[gpu.name][0], now=now, policy=policy),
                prober.snapshots.get(gpu.name))
        for gpu in fleet.gpus
    ]  # fmt: skip


def breaker_policy(settings: Settings) -> BreakerPolicy:
    """The breaker thresholds in force; a probe job may run as long as any job, plus a lease."""
    return BreakerPolicy(settings.breaker_failure_threshold, settings.breaker_recovery_s,
                         probe_timeout_s=settings.job_timeout_s + settings.lease_s)  # fmt: skip
