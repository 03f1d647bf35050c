"""GET /status/{job_id}/events: the exact server-sent events a client reads."""

from __future__ import annotations

import json
import re

import httpx

from smartqueue.store import Store
from tests.api.test_enqueue import submit


async def test_events_of_an_ended_job_are_status_chunk_and_final_status_events(
    client: httpx.AsyncClient, store: Store
) -> None:
    job_id = (await submit(client)).json()["job_id"]
    await store.events.append_chunks(job_id, [b'data: {"n":1}'])
    await client.post(f"/status/{job_id}/cancel")

    response = await client.get(f"/status/{job_id}/events")

    cancelled = json.dumps({"job_id": job_id, "status": "cancelled"}).encode()
    assert (
        re.sub(rb"id: \d+-\d+\n", b"id: N\n", response.content)
        == (
            b"event: status\ndata: " + cancelled + b"\n\n"  # the status when the client asked
            b'id: N\nevent: chunk\ndata: {"n":1}\n\n'
            b"id: N\nevent: status\ndata: " + cancelled + b"\n\n"
        )
    )
    assert response.headers["content-type"].startswith("text/event-stream")
