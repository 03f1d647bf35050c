"""The front door's stream relay: the GPU's events as it sent them, then [DONE] or an error."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import cast

import pytest

from smartqueue.api.holding import RedisFeed, error_event, relay_chunks
from smartqueue.store import Store
from smartqueue.watch import LocalHold

Event = tuple[str, dict[bytes, bytes]]


@dataclass
class ScriptedEvents:
    """A job's event stream read from a list."""

    events: list[Event]

    async def read(
        self, job_id: str, *, after: str, block_ms: int | None, count: int = 100
    ) -> list[Event]:
        """The events after `after` (the scripted list never blocks)."""
        ids = [event_id for event_id, _ in self.events]
        return self.events[ids.index(after) + 1 :][:count]


@dataclass
class ScriptedJobs:
    """Remembers cancellations."""

    cancelled: list[str] = field(default_factory=list)

    async def cancel(self, job_id: str, *, now: float) -> None:
        """Record that the relay stopped the job."""
        self.cancelled.append(job_id)


@dataclass
class ScriptedStore:
    """The two parts of the store the relay uses."""

    events: ScriptedEvents
    jobs: ScriptedJobs


def chunk(event_id: str, data: bytes) -> Event:
    return event_id, {b"type": b"chunk", b"data": data}


def status(event_id: str, value: str) -> Event:
    return event_id, {b"type": b"status", b"status": value.encode()}


async def relayed(events: list[Event]) -> tuple[bytes, list[str]]:
    store = ScriptedStore(ScriptedEvents(events), ScriptedJobs())
    feed = RedisFeed(cast(Store, store), LocalHold("job"), events=list(events))
    received = [part async for part in relay_chunks(feed, first=0)]
    return b"".join(received), store.jobs.cancelled


@pytest.mark.parametrize(
    ("events", "expected", "cancelled"),
    [
        pytest.param(
            [chunk("1-0", b'data: {"a":1}'), chunk("2-0", b"data: [DONE]"),
             status("3-0", "completed")],
            b'data: {"a":1}\n\ndata: [DONE]\n\n', [], id="completed",
        ),
        pytest.param(
            [chunk("1-0", b"data: x"), status("2-0", "retrying")],
            b"data: x\n\n" + error_event("the GPU stream failed (retrying)", code="retrying"),
            ["job"], id="failed-mid-stream",
        ),
        pytest.param(
            [chunk("1-0", b"data: x"), status("2-0", "processing"), status("3-0", "cancelled")],
            b"data: x\n\n" + error_event("the GPU stream failed (cancelled)", code="cancelled"),
            ["job"], id="cancelled",
        ),
    ],
)  # fmt: skip
async def test_relay_passes_gpu_events_through_and_ends_in_done_or_error(
    events: list[Event], expected: bytes, cancelled: list[str]
) -> None:
    assert await relayed(events) == (expected, cancelled)


def test_error_event_is_one_data_event_an_openai_sdk_raises() -> None:
    body = {"error": {"message": "boom", "type": "upstream_error", "code": "dead"}}

    assert error_event("boom", code="dead") == b"data: " + json.dumps(body).encode() + b"\n\n"
