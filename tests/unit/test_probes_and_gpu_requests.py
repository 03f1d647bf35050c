"""Parsing engine metrics and building GPU requests (pure parts of fleet.py and gpu_client.py)."""

from __future__ import annotations

import httpx
import pytest

from smartqueue.config import FleetConfig
from smartqueue.fleet import parse_prometheus
from smartqueue.gpu_client import GpuClient
from smartqueue.queue import StreamEntry

LLAMACPP = """# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 3
"""
VLLM = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 4
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 1
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
"""


@pytest.mark.parametrize(
    ("text", "running", "waiting", "kv"), [(LLAMACPP, 2, 3, None), (VLLM, 4, 1, 25.0)]
)
def test_parse_prometheus_reads_llamacpp_and_vllm_queue_numbers(
    text: str, running: int, waiting: int, kv: float | None
) -> None:
    metrics = parse_prometheus(text)

    assert (metrics.running, metrics.waiting, metrics.kv_cache_pct) == (running, waiting, kv)


def test_parse_prometheus_infinite_count_raises_what_the_prober_catches() -> None:
    with pytest.raises((ValueError, OverflowError)):
        parse_prometheus("llamacpp:requests_processing +Inf\n")


def test_gpu_request_asks_for_an_uncompressed_body_and_carries_the_job_id(
    local_fleet: FleetConfig,
) -> None:
    client = GpuClient(httpx.AsyncClient(), local_fleet, max_result_bytes=1024)
    entry = StreamEntry("1-0", "job-1", b"{}", {"accept": "*/*", "x-syslog-model": "light"})

    headers = client.request_headers(local_fleet.gpus[0], entry)

    assert headers["accept-encoding"] == "identity"
    assert headers["X-Smartqueue-Job-Id"] == "job-1"
    assert "x-syslog-model" not in headers
