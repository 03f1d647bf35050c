"""Waking local waiters when a job ends anywhere in the cluster, and handing over in-process.

Every status change to a terminal state publishes the job id on one Redis channel; each replica
runs one subscriber task that sets the events of its local waiters. Waiters still re-read the
job record after each wake-up or short timeout, so a missed message only costs latency.

When the request held for a job and the consumer running it are in the same replica, the
consumer hands over in-process (`LocalHold`): streamed chunks as they come, and the answer once
its commit succeeded, so the held request needs no pub/sub hop and no record re-read. Redis
still gets everything (other replicas, reconnects), and stays the path for every other case.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from smartqueue.errors import StoreUnavailable
from smartqueue.queue import StoredResult
from smartqueue.store import Store

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LocalHold:
    """A request held on this replica for one job, fed by a consumer of this replica.

    The consumer sets `running` before it calls the GPU, adds each chunk before writing it to
    Redis, and sets `answer` only after its commit succeeded; `ended` once its run is over,
    whatever became of it (the record then says what).
    """

    job_id: str
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    running: bool = False
    chunks: list[bytes] = field(default_factory=list)
    answer: StoredResult | None = None
    ended: bool = False

    def add_chunk(self, chunk: bytes) -> None:
        """A streamed chunk, in order, as the GPU sent it."""
        self.chunks.append(chunk)
        self.woken.set()

    def complete(self, answer: StoredResult) -> None:
        """The job completed with `answer` (its commit succeeded)."""
        self.answer = answer
        self.end()

    def end(self) -> None:
        """The local run is over (completed, or the record says what became of it)."""
        self.ended = True
        self.woken.set()


class JobWatch:
    """One subscription per replica, fanned out to any number of local waiters."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._holds: dict[str, LocalHold] = {}

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
            self._forget(job_id, event)

    def _forget(self, job_id: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(job_id, set())
        waiters.discard(event)
        if not waiters:
            self._waiters.pop(job_id, None)

    def hold(self, job_id: str) -> LocalHold:
        """A local hold for `job_id`, woken by the local consumer or by a job-end notification.

        Open it before the job is enqueued, so a consumer of this replica always finds it;
        `release` it when the request is answered.
        """
        hold = LocalHold(job_id)
        self._waiters.setdefault(job_id, set()).add(hold.woken)
        self._holds[job_id] = hold
        return hold

    def release(self, hold: LocalHold) -> None:
        """Forget a hold (safe to call twice)."""
        if self._holds.get(hold.job_id) is hold:
            del self._holds[hold.job_id]
        self._forget(hold.job_id, hold.woken)

    def local_hold(self, job_id: str) -> LocalHold | None:
        """The request held on this replica for `job_id`, if there is one."""
        return self._holds.get(job_id)

    def _wake(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()
