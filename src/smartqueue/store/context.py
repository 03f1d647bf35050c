"""What every part of the store shares: the client, key names, scripts and settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from smartqueue.models import JobStatus
from smartqueue.store.connection import Client
from smartqueue.store.keys import Keys
from smartqueue.store.scripts import Arg, Change, Scripts


@dataclass(frozen=True)
class StoreContext:
    """One deployment's view of Redis."""

    redis: Client
    keys: Keys
    scripts: Scripts
    routes: list[str]
    terminal_ttl_s: int
    idempotency_ttl_s: int
    max_block_ms: int  # blocking reads stay well within the client's socket timeout
    events_ttl_s: int = 600  # a terminal job's event stream is kept this long
    min_replicas: int = 0  # replicas that must hold a submission (WAIT) before it is accepted
    replica_wait_ms: int = 0

    def change(self, target: JobStatus, updates: Mapping[str, Arg] | None = None) -> Change:
        """A status change to `target` with this deployment's TTLs."""
        return Change(target, self.terminal_ttl_s, updates or {}, self.events_ttl_s)

    async def hashes(self, keys: list[str]) -> list[dict[bytes, bytes]]:
        """Several hashes in one round trip, in the order of `keys` ({} for a missing one)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            return cast(list[dict[bytes, bytes]], await pipe.execute())
