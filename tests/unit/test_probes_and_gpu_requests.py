"""Building GPU requests (pure parts of gpu_client.py); engine metrics: test_engine_adapters."""

from __future__ import annotations

import json

import httpx
import pytest

from smartqueue.config import FleetConfig
from smartqueue.gpu_client import GpuClient
from smartqueue.queue import StreamEntry, stored_headers


def test_gpu_request_asks_for_an_uncompressed_body_and_carries_the_job_id(
    local_fleet: FleetConfig,
) -> None:
    client = GpuClient(httpx.AsyncClient(), local_fleet, max_result_bytes=1024)
    entry = StreamEntry("1-0", "job-1", b"{}", {"accept": "*/*", "x-syslog-model": "light"})

    headers = client.request_headers(local_fleet.gpus[0], entry)

    assert headers["accept-encoding"] == "identity"
    assert headers["X-Smartqueue-Job-Id"] == "job-1"
    assert "x-syslog-model" not in headers


@pytest.mark.parametrize(
    ("client_headers", "stored", "sent"),
    [
        ({"content-type": "application/json", "accept": "*/*"}, "", "*/*"),  # the defaults
        ({"accept": "text/event-stream"}, '{"accept":"text/event-stream"}', "text/event-stream"),
    ],
)
def test_a_job_stores_only_headers_that_differ_from_what_its_gpu_call_sends_anyway(
    local_fleet: FleetConfig, client_headers: dict[str, str], stored: str, sent: str
) -> None:
    client = GpuClient(httpx.AsyncClient(), local_fleet, max_result_bytes=1024)
    kept = json.loads(stored) if stored else {}

    headers = client.request_headers(local_fleet.gpus[0], StreamEntry("1-0", "j", b"{}", kept))

    assert stored_headers(client_headers) == stored
    assert (headers["accept"], headers["content-type"]) == (sent, "application/json")
