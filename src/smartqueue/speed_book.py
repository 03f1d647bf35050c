"""Each GPU's learned speed, as the dispatcher uses it: this replica's completed jobs teach it at
once, and every `refresh_s` one `sync` writes them into the statistics the replicas share in
Redis and reads back what the others taught (two round trips a second, not two a job)."""

from __future__ import annotations

import asyncio
import logging
import time

from smartqueue.errors import StoreUnavailable
from smartqueue.planner import DEFAULT_PRIOR, Sample, Speed, SpeedStats, fleet_speeds, observe
from smartqueue.stopping import wait_or_stop
from smartqueue.store import Store

log = logging.getLogger("smartqueue.speeds")

REFRESH_S = 1.0

Learnt = list[tuple[Sample, float]]  # samples with the time each was learnt


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
        self._unsynced: dict[str, Learnt] = {gpu: [] for gpu in gpus}
        self._synced_at = float("-inf")
        self._syncing = asyncio.Lock()

    async def speeds(self) -> dict[str, Speed]:
        """Every GPU's speed (`planner.fleet_speeds`: optimistic while a GPU has too few
        completed jobs), synced with the other replicas' at most `refresh_s` ago."""
        if time.monotonic() - self._synced_at >= self.refresh_s:
            await self.sync(unless_newer_than_s=self.refresh_s)
        return fleet_speeds(self._stats, prior=self.prior)

    def learn(self, gpu: str, sample: Sample, *, now: float) -> None:
        """Add one completed job of `gpu`: to this replica's speeds now, to the shared
        statistics at the next `sync`."""
        self._stats[gpu] = observe(self._stats[gpu], sample, now=now)
        self._unsynced[gpu].append((sample, now))

    async def sync(self, *, unless_newer_than_s: float | None = None) -> None:
        """Read the shared statistics, add the samples learnt here since the last sync, and
        write back those that changed: the samples stay for the next sync if Redis fails.
        With `unless_newer_than_s`, nothing happens when another sync ended that recently
        (consumers that found the speeds stale at once sync once).

        Two replicas syncing one GPU at the same instant may lose one's samples, and a write
        whose reply is lost is counted again at the next sync: a statistic over hundreds of
        jobs needs neither a lock across replicas nor exactly-once writes.
        """
        async with self._syncing:
            age_s = time.monotonic() - self._synced_at
            if unless_newer_than_s is not None and age_s < unless_newer_than_s:
                return
            stored = await self.store.speeds.read(self.gpus)
            unsynced, self._unsynced = self._unsynced, {gpu: [] for gpu in self.gpus}
            stats = _with_samples(
                {gpu: SpeedStats.from_fields(stored[gpu]) for gpu in self.gpus}, unsynced
            )
            try:
                await self.store.speeds.write(
                    {gpu: stats[gpu].to_fields() for gpu, learnt in unsynced.items() if learnt}
                )
            except BaseException:  # not written (or not known to be): kept for the next sync
                for gpu, learnt in unsynced.items():
                    self._unsynced[gpu][:0] = learnt
                raise
            # with the samples learnt while the write was under way (shared at the next sync)
            self._stats = _with_samples(stats, self._unsynced)
            self._synced_at = time.monotonic()

    async def run(self, stopping: asyncio.Event) -> None:
        """Sync every `refresh_s` while samples wait, so a replica that plans nothing still
        shares what it learnt, until `stopping` is set (the owner syncs once more after its
        last job). A failed sync is retried at the next turn; it never stops the caller."""
        while not await wait_or_stop(stopping, self.refresh_s):
            if any(self._unsynced.values()):
                try:
                    await self.sync()
                except StoreUnavailable:
                    pass
                except Exception:
                    log.exception("speed sync failed")


def _with_samples(stats: dict[str, SpeedStats], learnt: dict[str, Learnt]) -> dict[str, SpeedStats]:
    """`stats` with each GPU's `learnt` samples observed in order."""
    for gpu, samples in learnt.items():
        for sample, at in samples:
            stats[gpu] = observe(stats[gpu], sample, now=at)
    return stats
