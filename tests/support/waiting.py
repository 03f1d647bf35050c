"""Waiting on a condition under a timeout, instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.02,
) -> T:
    """The first truthy value `probe` returns; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


async def holds_for(
    check: Callable[[], Awaitable[None]], *, duration_s: float, interval_s: float = 0.05
) -> None:
    """Run `check` (which asserts) repeatedly for `duration_s`: an invariant over a period."""
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        await check()
        await asyncio.sleep(interval_s)
    await check()
