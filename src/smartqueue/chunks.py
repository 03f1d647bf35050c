"""Relaying a streamed job's chunks to Redis without a round trip per token.

The first chunk is written at once; chunks that arrive while a write is in flight wait for it
and go together in the next one. A slow stream therefore pays no added latency, and a fast one
costs one round trip per batch instead of one per token. A request held for the job on this
replica gets each chunk in-process at once, before its batch reaches Redis.
"""

from __future__ import annotations

import asyncio

from smartqueue.store import Store
from smartqueue.watch import LocalHold


class ChunkBatcher:
    """Appends one job's chunks to its event stream, batching while a write is in flight."""

    def __init__(self, store: Store, job_id: str, *, local: LocalHold | None = None) -> None:
        self.store = store
        self.job_id = job_id
        self.local = local
        self.pending: list[bytes] = []
        self.writer: asyncio.Task[None] | None = None

    async def add(self, chunk: bytes) -> None:
        """Queue a chunk; start a write unless one is in flight (it will take this one too)."""
        if self.local is not None:
            self.local.add_chunk(chunk)
        self.pending.append(chunk)
        if self.writer is None or self.writer.done():
            if self.writer is not None:
                self.writer.result()  # a failed write stops the relay here
            self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            await self.store.events.append_chunks(self.job_id, batch)

    async def flush(self) -> None:
        """Wait until every chunk added so far is in Redis (raises what a write raised)."""
        if self.writer is not None:
            await self.writer
        if self.pending:
            await self._write()

    async def close(self) -> None:
        """Stop any write in flight (the job ended without its outcome)."""
        if self.writer is not None and not self.writer.done():
            self.writer.cancel()
            await asyncio.gather(self.writer, return_exceptions=True)
