"""Maintenance, once per interval per replica: due retries back to their streams, jobs that
waited too long expired, entries of dead consumers reclaimed (or dead as poison), batches fed
and ended (batch_runner.py); heartbeats and dead letters past their retention trimmed at the
heartbeat interval."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from smartqueue.batch_runner import BatchRunner
from smartqueue.config import Settings
from smartqueue.errors import StoreUnavailable
from smartqueue.models import ConsumerInfo, DeadReason, ErrorInfo
from smartqueue.outcomes import OutcomeRecorder, job_fields
from smartqueue.stopping import wait_or_stop
from smartqueue.store import Store

log = logging.getLogger(__name__)


class Described(Protocol):
    """Something that can say what a local consumer is doing."""

    def info(self, now: float) -> ConsumerInfo:
        """Its registry entry at `now`."""
        ...


class Maintenance:
    """The replica's housekeeping task."""

    def __init__(
        self, settings: Settings, *, store: Store, recorder: OutcomeRecorder, replica: str,
        consumers: Sequence[Described], batches: BatchRunner | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.store = store
        self.recorder = recorder
        self.reclaimer = f"{replica}-reclaimer"
        self.replica = replica
        self.alone = False  # no other replica's consumer alive, as of the last heartbeat
        self.consumers = consumers
        self.batches = batches

    async def run(self, stopping: asyncio.Event) -> None:
        """Every maintenance interval until `stopping` is set."""
        last_heartbeat = last_reconcile = 0.0
        while not await wait_or_stop(stopping, self.settings.maintenance_interval_s):
            now = time.time()
            try:
                await self.tick(now)
                if now - last_heartbeat >= self.settings.heartbeat_interval_s:
                    await self.heartbeat(now)
                    await self.trim_dead_letters(now)
                    last_heartbeat = now
                if now - last_reconcile >= self.settings.reconcile_interval_s:
                    await self.reconcile()
                    last_reconcile = now
            except StoreUnavailable as error:
                log.warning("maintenance: store unavailable", extra={"error": error.message})

    async def reconcile(self) -> None:
        """Bring the depth counters back to what the streams hold, should they drift."""
        if fixed := await self.store.claims.reconcile_counts():
            log.warning("depth counters corrected", extra={"streams": fixed})

    async def tick(self, now: float) -> None:
        """One round: due retries, expiry, reclaim, then batches fed, stopped and ended."""
        await self.store.claims.move_due(now_ms=int(now * 1000))
        expired = await self.store.claims.expire_waiting(
            now=now, max_wait_s=self.settings.max_wait_s
        )
        for job in expired:
            self.recorder.expired(job)
        await self.reclaim()
        if self.batches is not None:
            await self.batches.tick(now)

    async def trim_dead_letters(self, now: float) -> int:
        """Drop dead letters older than the retention (XTRIM MINID); how many went."""
        trimmed = await self.store.dlq.trim(older_than=now - self.settings.dlq_retention_s)
        if trimmed:
            self.recorder.metrics.dlq_trimmed.inc(trimmed)
            log.info(
                "dlq trimmed",
                extra={"entries": trimmed, "retention_s": self.settings.dlq_retention_s},
            )
        return trimmed

    async def heartbeat(self, now: float) -> None:
        """Tell the registry every local consumer is alive, and learn whether other replicas'
        consumers are."""
        for consumer in self.consumers:
            await self.store.consumers.heartbeat(consumer.info(now),
                                                 ttl_s=self.settings.consumer_ttl_s)  # fmt: skip
        self.alone = not await self.store.consumers.others_live(
            prefix=f"{self.replica}-", now=now, ttl_s=self.settings.consumer_ttl_s
        )

    async def reclaim(self) -> None:
        """Jobs of consumers that went silent run again, or die as poison when that repeats."""
        stale = await self.store.claims.reclaim(
            consumer=self.reclaimer, min_idle_ms=int(self.settings.claim_idle_s * 1000)
        )
        for job, reclaims in stale:
            log.warning("reclaimed", extra={**job_fields(job), "reclaims": reclaims})
            if reclaims > self.settings.max_reclaims:
                error = ErrorInfo(message=f"its consumer died {reclaims} times", type="poison")
                await self.recorder.dead(job, self.reclaimer, DeadReason.POISON, error,
                                         attempts=job.attempts)  # fmt: skip
            else:
                await self.recorder.release(job, self.reclaimer, "its consumer stopped answering")
