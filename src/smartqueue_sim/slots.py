"""Generation slots: N requests generate at once, the rest wait in arrival order (deferred)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class SlotPool:
    """A fair (FIFO) pool of numbered slots, like llama.cpp's `--parallel N`."""

    def __init__(self, slots: int) -> None:
        self._size = slots
        self._free: deque[int] = deque(range(slots))
        self._waiters: deque[asyncio.Future[int]] = deque()

    @property
    def size(self) -> int:
        """Number of slots."""
        return self._size

    @property
    def busy(self) -> frozenset[int]:
        """Ids of the slots in use."""
        return frozenset(range(self._size)) - frozenset(self._free)

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def acquire(self) -> int:
        """Take a free slot, waiting behind earlier requests if none is free."""
        if self._free and not self._waiters:
            return self._free.popleft()
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise

    def _abandon(self, waiter: asyncio.Future[int]) -> None:
        if waiter.done() and not waiter.cancelled():
            self.release(waiter.result())
        elif waiter in self._waiters:
            self._waiters.remove(waiter)

    def release(self, slot_id: int) -> None:
        """Give a slot back: to the longest waiter, or to the free list."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(slot_id)
                return
        self._free.append(slot_id)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold a slot for the duration of the block."""
        slot_id = await self.acquire()
        try:
            yield slot_id
        finally:
            self.release(slot_id)
