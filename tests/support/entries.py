"""Reading stream entries in tests, as a consumer would (typed once, here)."""

from __future__ import annotations

from typing import Any, cast

from smartqueue.queue import StreamEntry
from smartqueue.store.connection import Client
from smartqueue.store.keys import GROUP


async def read_entry(client: Client, stream: str, consumer: str = "c1") -> StreamEntry:
    """Take the next undelivered entry of `stream` for the shared group (it must exist)."""
    reply = cast(list[Any], await client.xreadgroup(GROUP, consumer, {stream: ">"}, count=1))
    assert reply, f"no entry to read on {stream}"
    entry_id, fields = cast(tuple[bytes, dict[bytes, bytes]], reply[0][1][0])
    return StreamEntry(
        entry_id=entry_id.decode(),
        job_id=fields[b"job_id"].decode(),
        payload=fields[b"payload"],
        headers={},
    )
