"""One JSON line per lifecycle event, from a real replica's stderr; never a secret header."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from smartqueue.config import FleetConfig, Settings, parse_fleet
from tests.ops.conftest import events, log_lines
from tests.support.ports import free_port
from tests.support.service import ServiceHandle, running_service
from tests.support.sim import SimHandle

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
SECRETS = {
    "Authorization": "Bearer canary-authorization-5f1c",
    "Cookie": "session=canary-cookie-9a7e",
    "X-Api-Key": "canary-api-key-3d2b",
    "Proxy-Authorization": "Basic canary-proxy-8c4f",
}
CHAT = {"model": "any", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
TERMINAL = {"completed", "dead", "cancelled"}


def fleet_with_a_dead_route(gpu: SimHandle) -> FleetConfig:
    """Route `default` on a live sim; route `dead` on a port nothing listens on."""
    gone = f"http://127.0.0.1:{free_port()}"
    gpus = [
        {"name": "live", "url": gpu.url, "sidecar_url": gpu.sidecar_url, "engine": "vllm",
         "model": "model-live", "slots": 2, "vram_total_mb": 24576},
        {"name": "gone", "url": gone, "sidecar_url": gone, "engine": "vllm", "model": "m",
         "slots": 1, "vram_total_mb": 1024},
    ]  # fmt: skip
    return parse_fleet({"gpus": gpus, "routes": {"default": ["live"], "dead": ["gone"]}})


@pytest.fixture
def replica(
    sims: Callable[..., dict[str, SimHandle]],
    engine_settings: Callable[..., Settings],
    tmp_path: Path,
) -> Iterator[tuple[ServiceHandle, SimHandle]]:
    """A replica logging at debug, its live sim, and a route whose only GPU is down."""
    gpu = sims(live={"slots": 2})["live"]
    settings = engine_settings(log_level="debug", ceiling_low=1, max_wait_s=3.0)
    with running_service(settings, fleet_with_a_dead_route(gpu), workdir=tmp_path) as handle:
        yield handle, gpu


def wait_status(replica: ServiceHandle, job_id: str, wanted: set[str]) -> dict[str, Any]:
    """Poll the job until its status is one of `wanted`; its record."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        admin = {"Authorization": "Bearer t"}  # tests/engine/conftest.py's admin token
        record: dict[str, Any] = httpx.get(f"{replica.url}/status/{job_id}", headers=admin).json()
        if record["status"] in wanted:
            return record
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {wanted}")


def wait_line(replica: ServiceHandle, name: str, **match: Any) -> dict[str, Any]:
    """The first log line of event `name` matching `match` (it may take a moment to appear)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if found := events(replica, name, **match):
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {name!r} line with {match}:\n{replica.log_tail()}")


def run_every_lifecycle(replica: ServiceHandle, gpu: SimHandle) -> dict[str, str]:
    """Accepted/completed (traced, with secrets), refused, cancelled, expired, retried, dead."""
    url, traced = replica.url, {**SECRETS, "traceparent": TRACEPARENT}
    jobs = {"done": httpx.post(f"{url}/enqueue", json=CHAT, headers=traced).json()["job_id"]}
    front = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=SECRETS, timeout=30)
    assert front.status_code == 200, front.text
    low = {"X-Syslog-Model": "dead", "X-Syslog-Priority": "low"}
    jobs["cancelled"] = httpx.post(f"{url}/enqueue", json=CHAT, headers={**low, **SECRETS}).json()[
        "job_id"
    ]  # its owner cancels
    assert httpx.post(f"{url}/enqueue", json=CHAT, headers=low).status_code == 503
    httpx.post(f"{url}/status/{jobs['cancelled']}/cancel", headers=traced)
    jobs["expired"] = httpx.post(f"{url}/enqueue", json=CHAT,
                                 headers={"X-Syslog-Model": "dead"}).json()["job_id"]  # fmt: skip
    gpu.set_faults("rate_limit", retry_after_s=0)
    jobs["dead"] = httpx.post(f"{url}/enqueue", json=CHAT, headers=SECRETS).json()["job_id"]
    wait_status(replica, jobs["dead"], {"dead"})
    gpu.set_faults("none")
    for job_id in jobs.values():
        wait_status(replica, job_id, TERMINAL)
    return jobs


def test_each_lifecycle_event_is_one_json_line_with_job_route_gpu_and_trace(
    replica: tuple[ServiceHandle, SimHandle],
) -> None:
    service, gpu = replica
    jobs = run_every_lifecycle(service, gpu)

    accepted = wait_line(service, "accepted", job_id=jobs["done"])
    dispatched = wait_line(service, "dispatched", job_id=jobs["done"])
    completed = wait_line(service, "completed", job_id=jobs["done"])
    refused = wait_line(service, "refused", route="dead")
    cancelled = wait_line(service, "cancelled", job_id=jobs["cancelled"])
    expired = wait_line(service, "expired", job_id=jobs["expired"])
    retried = events(service, "retried", job_id=jobs["dead"])
    dead = wait_line(service, "dead", job_id=jobs["dead"])

    assert (accepted["route"], accepted["priority"], accepted["depth"]) == ("default", "normal", 1)
    assert accepted["trace_id"] == dispatched["trace_id"] == completed["trace_id"] == TRACE_ID
    assert (dispatched["gpu"], completed["gpu"]) == ("live", "live")
    assert completed["duration_s"] > 0
    assert completed["tokens"]["completion_tokens"] > 0
    assert (refused["why"], refused["priority"]) == ("route_full", "low")
    assert (cancelled["route"], cancelled["was"], cancelled["trace_id"]) == ("dead", "queued",
                                                                              TRACE_ID)  # fmt: skip
    assert (expired["route"], expired["reason"]) == ("dead", "expired")
    assert [line["gpu"] for line in retried] == ["live"] * 3
    assert (dead["reason"], dead["route"], dead["gpu"]) == ("retries_exhausted", "default", "live")
    assert "trace_id" not in dead  # the client sent no traceparent for this one


def test_no_log_line_carries_a_secret_header_value(
    replica: tuple[ServiceHandle, SimHandle],
) -> None:
    service, gpu = replica
    run_every_lifecycle(service, gpu)
    wait_line(service, "dead")

    lines = log_lines(service)  # every line parses as JSON, or this fails
    text = service.log_file.read_text(encoding="utf-8")

    assert len(lines) > 10
    for secret in SECRETS.values():
        assert secret.split()[-1] not in text
