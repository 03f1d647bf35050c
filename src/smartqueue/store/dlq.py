"""The dead-letter queue: list, retry exactly once, discard, trim past retention."""

from __future__ import annotations

import re
from typing import cast

from smartqueue.errors import Conflict
from smartqueue.models import DlqEntry, Priority
from smartqueue.queue import StreamEntry
from smartqueue.store import scripts
from smartqueue.store.codec import (
    RawEntries,
    created_ms,
    dlq_entry,
    entry_from_raw,
    stored_priority,
)
from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext
from smartqueue.store.keys import Counter

_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


class DeadLetters:
    """Jobs that ended dead, kept with their request so they can run again."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def length(self) -> int:
        """Entries in the dead-letter queue."""
        return int(await self.context.redis.xlen(self.context.keys.dlq))

    @translate_errors
    async def entries(self, *, limit: int, after: str | None = None) -> list[DlqEntry]:
        """DLQ entries, oldest first, after entry id `after` when given."""
        start = f"({after}" if after and _STREAM_ID.match(after) else "-"
        raw = await self.context.redis.xrange(self.context.keys.dlq, min=start, count=limit)
        return [dlq_entry(entry_from_raw(entry_id, fields))
                for entry_id, fields in cast(RawEntries, raw)]  # fmt: skip

    async def matching(
        self, *, reason: str | None = None, route: str | None = None, page: int = 500
    ) -> list[DlqEntry]:
        """Every entry with this reason and route (None: any), oldest first."""
        found: list[DlqEntry] = []
        after: str | None = None
        while batch := await self.entries(limit=page, after=after):
            found += [e for e in batch if reason in (None, e.reason) and route in (None, e.route)]
            after = batch[-1].id
        return found

    @translate_errors
    async def trim(self, *, older_than: float) -> int:
        """Remove entries that went dead before `older_than` (epoch seconds); how many."""
        min_id = f"{max(0, int(older_than * 1000))}-0"
        return int(await self.context.redis.xtrim(self.context.keys.dlq, minid=min_id,
                                                  approximate=False))  # fmt: skip

    @translate_errors
    async def retry(self, entry_id: str, *, new_job_id: str, now: float) -> str | None:
        """Re-run a dead job as `new_job_id`, exactly once; the old job id, else None."""
        entry = await self._entry(entry_id)
        if entry is None:
            return None
        route, priority = entry.fields["route"], Priority(entry.fields["priority"])
        if route not in self.context.routes:
            raise Conflict(f"route {route!r} of this dead job is no longer in the fleet")
        keys = self.context.keys
        call = scripts.dlq_retry(
            dlq=keys.dlq, stream=keys.stream(priority, route), new_record=keys.job(new_job_id),
            old_record=keys.job(entry.job_id), wake=keys.wake, counts=keys.counts,
            counter=Counter.of(priority, route), dlq_entry=entry_id,
            route=route, priority=stored_priority(priority), created_ms=created_ms(now),
            old_job_id=entry.job_id,
            new_job_id=new_job_id, fields=list(entry.job_fields(new_job_id)),
            owner=entry.fields.get("owner", ""),
        )  # fmt: skip
        done = await self.context.scripts.run(call)
        return entry.job_id if done else None

    @translate_errors
    async def discard(self, entry_id: str) -> bool:
        """Delete a DLQ entry; False when there was none."""
        if not _STREAM_ID.match(entry_id):
            return False
        return bool(await self.context.redis.xdel(self.context.keys.dlq, entry_id))

    async def _entry(self, entry_id: str) -> StreamEntry | None:
        if not _STREAM_ID.match(entry_id):
            return None
        dlq = self.context.keys.dlq
        raw = cast(RawEntries, await self.context.redis.xrange(dlq, min=entry_id, max=entry_id))
        return entry_from_raw(*raw[0]) if raw else None
