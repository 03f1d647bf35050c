"""Every Redis key name smartqueue uses, under one configurable prefix.

Every key carries the same hash tag, `{<prefix>}`, so all keys of one deployment live in one
Redis Cluster slot: each Lua script may touch any of them in one atomic step (Cluster requires
a script's keys to share a slot), and several deployments can share a cluster by prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartqueue.models import DISPATCH_ORDER, Priority

GROUP = "smartqueue"
"""The one consumer group of the running stream, shared by every consumer of every replica."""


@dataclass(frozen=True)
class Keys:
    """Key names for one deployment (tests use a random prefix each)."""

    prefix: str

    @property
    def tag(self) -> str:
        """The hash tag every key starts with."""
        return "{" + self.prefix + "}"

    def stream(self, priority: Priority, route: str) -> str:
        """Jobs waiting for dispatch, one stream per priority and route (no consumer group: a
        consumer takes any entry of the planner's window, not only the oldest)."""
        return f"{self.tag}:q:{priority.value}:{route}"

    @property
    def running(self) -> str:
        """Jobs taken for a GPU, until their outcome is committed: the consumer group's stream
        (who holds which job, for renewal, reclaim and commits)."""
        return f"{self.tag}:running"

    def streams(self, routes: list[str]) -> list[str]:
        """Every job stream, high priority first (batch streams last)."""
        return [self.stream(priority, route) for priority in DISPATCH_ORDER for route in routes]

    def job(self, job_id: str) -> str:
        """A job's record (hash)."""
        return f"{self.tag}:job:{job_id}"

    def events(self, job_id: str) -> str:
        """A job's lifecycle events and streamed completion chunks (stream)."""
        return f"{self.tag}:events:{job_id}"

    def idempotency(self, digest: str) -> str:
        """An Idempotency-Key (hashed) -> job id."""
        return f"{self.tag}:idem:{digest}"

    @property
    def dlq(self) -> str:
        """The dead-letter stream."""
        return f"{self.tag}:dlq"

    @property
    def delayed(self) -> str:
        """Jobs waiting out a retry backoff (sorted set by due time)."""
        return f"{self.tag}:delayed"

    @property
    def wake(self) -> str:
        """A short list idle consumers block on; pushed when a job becomes ready."""
        return f"{self.tag}:wake"

    @property
    def consumers(self) -> str:
        """Consumer ids by last heartbeat (sorted set)."""
        return f"{self.tag}:consumers"

    def consumer(self, consumer_id: str) -> str:
        """A consumer's self-description (hash with a TTL)."""
        return f"{self.tag}:consumer:{consumer_id}"

    def slots(self, gpu: str) -> str:
        """Slot reservations on a GPU: holder -> expiry (sorted set)."""
        return f"{self.tag}:slots:{gpu}"

    def ends(self, gpu: str) -> str:
        """Predicted ends of the jobs running on a GPU: job id -> epoch ms (hash)."""
        return f"{self.tag}:ends:{gpu}"

    def speed(self, gpu: str) -> str:
        """A GPU's learned speed: decayed statistics of its completed jobs (hash)."""
        return f"{self.tag}:speed:{gpu}"

    def breaker(self, gpu: str) -> str:
        """A GPU's circuit breaker (hash)."""
        return f"{self.tag}:breaker:{gpu}"

    @property
    def counts(self) -> str:
        """Jobs that entered and left each job stream (hash of counters, see `Counter`)."""
        return f"{self.tag}:counts"

    def file(self, file_id: str) -> str:
        """A Files API record (hash); the bytes live in the blob directory."""
        return f"{self.tag}:file:{file_id}"

    def files(self, owner: str) -> str:
        """An owner's files by creation time (sorted set)."""
        return f"{self.tag}:files:{owner}"

    def batch(self, batch_id: str) -> str:
        """A batch's record: status, timestamps, counts and feeding cursor (hash)."""
        return f"{self.tag}:batch:{batch_id}"

    def batch_lines(self, batch_id: str) -> str:
        """A batch's ended requests: custom_id -> `outcome:line` (hash, once per custom_id)."""
        return f"{self.tag}:batch-lines:{batch_id}"

    def batches(self, owner: str) -> str:
        """An owner's batches by creation time (sorted set)."""
        return f"{self.tag}:batches:{owner}"

    @property
    def open_batches(self) -> str:
        """Batches not yet ended, by creation time: the ones maintenance feeds (sorted set)."""
        return f"{self.tag}:batches-open"

    def batch_finalizer(self, batch_id: str) -> str:
        """Who writes a batch's output files right now (string with a TTL)."""
        return f"{self.tag}:batch-finalizer:{batch_id}"

    @property
    def done_channel(self) -> str:
        """Pub/sub channel carrying the id of every job that just ended."""
        return f"{self.tag}:done"


@dataclass(frozen=True)
class Counter:
    """The fields of the counts hash for one job stream (or all of them: `everywhere`).

    A stream's depth is `in - out`: every script that adds a waiting entry increments `in`,
    every one that takes, cancels or expires one increments `out`, in the same atomic step. So
    admission reads a route's depth in O(1) whatever the number of routes, and a job's position
    is `its seq - out - 1` (seq: the stream's `in` when the job entered).
    """

    name: str

    @classmethod
    def of(cls, priority: Priority, route: str) -> Counter:
        """The counters of the (priority, route) stream."""
        return cls(f"{priority.value}:{route}")

    @classmethod
    def everywhere(cls) -> Counter:
        """The counters over every stream (the global ceiling guards Redis memory)."""
        return cls("*")

    @property
    def entered(self) -> str:
        """Field counting entries added."""
        return f"in:{self.name}"

    @property
    def left(self) -> str:
        """Field counting entries that left (taken, cancelled, expired)."""
        return f"out:{self.name}"
