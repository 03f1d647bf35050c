"""Every Redis key name smartqueue uses, under one configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass

from smartqueue.models import PRIORITY_ORDER, Priority

GROUP = "smartqueue"
"""The one consumer group shared by every consumer of every replica."""


@dataclass(frozen=True)
class Keys:
    """Key names for one deployment (tests use a random prefix each)."""

    prefix: str

    def stream(self, priority: Priority, route: str) -> str:
        """Jobs waiting for dispatch, one stream per priority and route."""
        return f"{self.stream_prefix()}{priority.value}:{route}"

    def streams(self, routes: list[str]) -> list[str]:
        """Every job stream, high priority first."""
        return [self.stream(priority, route) for priority in PRIORITY_ORDER for route in routes]

    def job(self, job_id: str) -> str:
        """A job's record (hash)."""
        return f"{self.job_prefix()}{job_id}"

    def idempotency(self, digest: str) -> str:
        """An Idempotency-Key (hashed) -> job id."""
        return f"{self.prefix}:idem:{digest}"

    @property
    def dlq(self) -> str:
        """The dead-letter stream."""
        return f"{self.prefix}:dlq"

    @property
    def delayed(self) -> str:
        """Jobs waiting out a retry backoff (sorted set by due time)."""
        return f"{self.prefix}:delayed"

    @property
    def wake(self) -> str:
        """A short list idle consumers block on; pushed when a job becomes ready."""
        return f"{self.prefix}:wake"

    def stream_prefix(self) -> str:
        """The part of a job stream's key before `<priority>:<route>` (for Lua)."""
        return f"{self.prefix}:q:"

    def job_prefix(self) -> str:
        """The part of a job record's key before the job id (for Lua)."""
        return f"{self.prefix}:job:"

    @property
    def consumers(self) -> str:
        """Consumer ids by last heartbeat (sorted set)."""
        return f"{self.prefix}:consumers"

    def consumer(self, consumer_id: str) -> str:
        """A consumer's self-description (hash with a TTL)."""
        return f"{self.prefix}:consumer:{consumer_id}"

    def slots(self, gpu: str) -> str:
        """Slot reservations on a GPU: holder -> expiry (sorted set)."""
        return f"{self.prefix}:slots:{gpu}"

    def breaker(self, gpu: str) -> str:
        """A GPU's circuit breaker (hash)."""
        return f"{self.prefix}:breaker:{gpu}"

    def gpu_health(self, gpu: str) -> str:
        """A GPU's latest probe, shared by the replicas (string with a TTL)."""
        return f"{self.prefix}:health:{gpu}"

    def events(self, job_id: str) -> str:
        """A job's lifecycle events and streamed completion chunks (stream)."""
        return f"{self.prefix}:events:{job_id}"

    @property
    def done_channel(self) -> str:
        """Pub/sub channel carrying the id of every job that just ended."""
        return f"{self.prefix}:done"
