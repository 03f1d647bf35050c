"""Waking local waiters when a job ends anywhere in the cluster.

Every status change to a terminal state publishes the job id on one Redis channel; each replica
runs one subscriber task that sets the events of its local waiters. Waiters still re-read the
job record after each wake-up or short timeout, so a missed message only costs latency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from smartqueue.errors import StoreUnavailable
from smartqueue.store import Store

log = logging.getLogger(__name__)


class JobWatch:
    """One subscription per replica, fanned out to any number of local waiters."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiters: dict[str, set[asyncio.Event]] = {}

    async def run(self) -> None:
        """Listen until cancelled, resubscribing after Redis outages."""
        while True:
            try:
                async for job_id in self.store.events.done_notifications():
                    self._wake(job_id)
            except StoreUnavailable as error:
                log.warning("job watch: store unavailable", extra={"error": error.message})
            await asyncio.sleep(1.0)

    @contextmanager
    def watching(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set when `job_id` ends (while the block runs)."""
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id, set())
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(job_id, None)

    def _wake(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()
