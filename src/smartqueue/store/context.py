"""What every part of the store shares: the client, key names, scripts and settings."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from smartqueue.store.keys import Keys
from smartqueue.store.scripts import Scripts


@dataclass(frozen=True)
class StoreContext:
    """One deployment's view of Redis."""

    redis: aioredis.Redis
    keys: Keys
    scripts: Scripts
    routes: list[str]
    terminal_ttl_s: int
    idempotency_ttl_s: int
    max_block_ms: int  # blocking reads stay well within the client's socket timeout
