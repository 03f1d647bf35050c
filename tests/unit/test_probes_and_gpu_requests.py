"""Building GPU requests (pure parts of gpu_client.py); engine metrics: test_engine_adapters."""

from __future__ import annotations

import httpx

from smartqueue.config import FleetConfig
from smartqueue.gpu_client import GpuClient
from smartqueue.queue import StreamEntry


def test_gpu_request_asks_for_an_uncompressed_body_and_carries_the_job_id(
    local_fleet: FleetConfig,
) -> None:
    client = GpuClient(httpx.AsyncClient(), local_fleet, max_result_bytes=1024)
    entry = StreamEntry("1-0", "job-1", b"{}", {"accept": "*/*", "x-syslog-model": "light"})

    headers = client.request_headers(local_fleet.gpus[0], entry)

    assert headers["accept-encoding"] == "identity"
    assert headers["X-Smartqueue-Job-Id"] == "job-1"
    assert "x-syslog-model" not in headers
