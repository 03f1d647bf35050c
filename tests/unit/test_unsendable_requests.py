"""A job that cannot be encoded fails as INVALID_REQUEST before anything is sent (respx)."""

from __future__ import annotations

import httpx
import pytest
import respx

from smartqueue.config import FleetConfig
from smartqueue.gpu_client import GpuClient, GpuFailure
from smartqueue.policy import Failure
from smartqueue.queue import StreamEntry

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("payload", "headers"),
    [
        pytest.param(b"{}", {"x-request-id": "caf\u00e9"}, id="non-ascii-header"),
        pytest.param(b"{}", {"x-request-id": "line\nbreak"}, id="control-char-header"),
        pytest.param(DEEP, {"content-type": "text/plain"}, id="json-too-deep-to-set-model"),
    ],
)
async def test_unsendable_job_is_invalid_request_and_never_reaches_the_gpu(
    local_fleet: FleetConfig, payload: bytes, headers: dict[str, str]
) -> None:
    gpu = local_fleet.gpus[0]
    async with respx.mock(assert_all_called=False) as router, httpx.AsyncClient() as http:
        route = router.post(url__startswith=gpu.url).respond(200, json={})
        client = GpuClient(http, local_fleet, max_result_bytes=1024)
        entry = StreamEntry("1-0", "job-1", payload, headers)

        outcome = await client.call(gpu, entry, deadline_s=5, on_chunk=None)

    assert isinstance(outcome, GpuFailure)
    assert outcome.failure is Failure.INVALID_REQUEST
    assert not route.called
