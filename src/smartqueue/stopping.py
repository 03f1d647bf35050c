"""Waiting that ends early when the service stops."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_or_stop(stop: asyncio.Event, timeout_s: float) -> bool:
    """Sleep up to `timeout_s`; True when `stop` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=timeout_s)
    return stop.is_set()
