"""Each GPU's learned speed, as the dispatcher uses it: read from Redis (where every replica's
completed jobs add to it) at most once per `refresh_s`, and taught by this replica's jobs."""

from __future__ import annotations

import time

from smartqueue.planner import DEFAULT_PRIOR, Sample, Speed, SpeedStats, fleet_speeds, observe
from smartqueue.store import Store

REFRESH_S = 1.0


class SpeedBook:
    """The learned speeds of a fleet's GPUs (smartqueue.planner's model)."""

    def __init__(
        self, store: Store, gpus: list[str], *, prior: Speed = DEFAULT_PRIOR,
        refresh_s: float = REFRESH_S,
    ) -> None:  # fmt: skip
        self.store = store
        self.gpus = gpus
        self.prior = prior
        self.refresh_s = refresh_s
        self._stats = {gpu: SpeedStats() for gpu in gpus}
        self._read_at = float("-inf")

    async def speeds(self) -> dict[str, Speed]:
        """Every GPU's speed (`planner.fleet_speeds`: optimistic while a GPU has too few
        completed jobs)."""
        if time.monotonic() - self._read_at >= self.refresh_s:
            stored = await self.store.speeds.read(self.gpus)
            self._stats = {gpu: SpeedStats.from_fields(stored[gpu]) for gpu in self.gpus}
            self._read_at = time.monotonic()
        return fleet_speeds(self._stats, prior=self.prior)

    async def learn(self, gpu: str, sample: Sample, *, now: float) -> None:
        """Add one completed job of `gpu` to its shared statistics."""
        stored = await self.store.speeds.update(
            gpu, lambda fields: observe(SpeedStats.from_fields(fields), sample, now=now).to_fields()
        )
        self._stats[gpu] = SpeedStats.from_fields(stored)
