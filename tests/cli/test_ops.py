"""Operator commands against a real service process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from smartqueue.cli import app
from smartqueue.config import FleetConfig, Settings, parse_fleet
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.service import ServiceHandle, running_service

TOKEN = "ops-token"
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def fleet_of_dead_gpus() -> FleetConfig:
    """A one-GPU fleet on a loopback port nothing listens on."""
    url = f"http://127.0.0.1:{free_port()}"
    gpu = {"name": "gone", "url": url, "sidecar_url": url, "engine": "vllm", "model": "m",
           "slots": 1, "vram_total_mb": 1024}  # fmt: skip
    return parse_fleet({"gpus": [gpu], "routes": {"default": ["gone"]}})


@pytest.fixture
def replica(redis_server: RedisServer, key_prefix: str, tmp_path: Path) -> Iterator[ServiceHandle]:
    """A service whose only GPU is down, so jobs stay queued until max_wait_s."""
    settings = Settings(redis_url=redis_server.url, key_prefix=key_prefix, consumers=1,
                        probe_interval_s=0.2, probe_timeout_s=0.2,
                        admin_token=TOKEN, max_wait_s=0.5, maintenance_interval_s=0.05)  # fmt: skip
    with running_service(settings, fleet_of_dead_gpus(), workdir=tmp_path) as handle:
        yield handle


def run(replica: ServiceHandle, *args: str, token: str | None = TOKEN) -> tuple[int, str, str]:
    """`smartqueue ARGS --url <replica>`: exit code, stdout, stderr."""
    env = {"SMARTQUEUE_ADMIN_TOKEN": token} if token else {}
    result = CliRunner().invoke(app, [*args, "--url", replica.url], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_status_prints_the_overview_as_json(replica: ServiceHandle) -> None:
    code, out, _ = run(replica, "status")

    assert code == 0
    overview = json.loads(out)
    assert overview["thresholds"]["ceilings"] == {"high": 50, "normal": 40, "low": 30}
    assert [gpu["name"] for gpu in overview["gpus"]] == ["gone"]


def test_jobs_inspect_and_cancel_a_queued_job(replica: ServiceHandle) -> None:
    job_id = httpx.post(f"{replica.url}/enqueue", json=CHAT).json()["job_id"]

    inspected = run(replica, "jobs", "inspect", job_id)
    cancelled = run(replica, "jobs", "cancel", job_id)

    assert json.loads(inspected[1])["status"] == "queued"
    assert json.loads(cancelled[1])["status"] == "cancelled"


def test_jobs_inspect_unknown_job_exits_1_with_the_message(replica: ServiceHandle) -> None:
    code, _, err = run(replica, "jobs", "inspect", "A" * 22)

    assert code == 1
    assert err.startswith("smartqueue: 404 no job")


def test_dlq_list_retry_and_discard(replica: ServiceHandle) -> None:
    """Jobs that wait past max_wait_s (every GPU is down) go dead and reach the DLQ."""
    for _ in range(2):
        httpx.post(f"{replica.url}/enqueue", json=CHAT)
    deadline = time.monotonic() + 20
    entries: list[dict[str, str]] = []
    while len(entries) < 2 and time.monotonic() < deadline:
        entries = json.loads(run(replica, "dlq", "list")[1])["entries"]
        time.sleep(0.1)

    retried = run(replica, "dlq", "retry", entries[0]["id"])
    refused = run(replica, "dlq", "discard", entries[1]["id"], token=None)
    discarded = run(replica, "dlq", "discard", entries[1]["id"])

    assert [entry["reason"] for entry in entries] == ["expired", "expired"]
    assert json.loads(retried[1])["retry_of"] == entries[0]["job_id"]
    assert refused[0] == 1
    assert "SMARTQUEUE_ADMIN_TOKEN" in refused[2] or "401" in refused[2]
    assert discarded == (0, f"discarded {entries[1]['id']}\n", "")
