"""Draining a real replica: its running job finishes, it takes no new one, undrain resumes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from smartqueue.cli import app
from smartqueue.config import Settings
from tests.engine.conftest import fleet_for
from tests.ops.conftest import events
from tests.support.prometheus import samples
from tests.support.service import ServiceHandle, running_service
from tests.support.sim import SimHandle

TOKEN = "drain-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
LONG = {"model": "any", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 80}
SHORT = {**LONG, "max_tokens": 4}


@pytest.fixture
def replica(
    sims: Callable[..., dict[str, SimHandle]],
    engine_settings: Callable[..., Settings],
    tmp_path: Path,
) -> Iterator[ServiceHandle]:
    """One replica on one slow sim GPU (an 80-token job takes about 2 s)."""
    gpus = sims(a={"slots": 2, "speed": 1.0})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})
    with running_service(engine_settings(admin_token=TOKEN), fleet, workdir=tmp_path) as handle:
        yield handle


def status_of(replica: ServiceHandle, job_id: str) -> str:
    """A job's status."""
    status: str = httpx.get(f"{replica.url}/status/{job_id}").json()["status"]
    return status


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 20) -> Any:
    """The first truthy value of `check` within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_drain_lets_the_running_job_finish_takes_no_new_one_and_undrain_resumes(
    replica: ServiceHandle,
) -> None:
    url = replica.url
    running = httpx.post(f"{url}/enqueue", json=LONG).json()["job_id"]
    wait_for(lambda: status_of(replica, running) == "processing", "the long job to start")

    drained = httpx.post(f"{url}/admin/drain", headers=ADMIN).json()
    waiting = httpx.post(f"{url}/enqueue", json=SHORT).json()["job_id"]
    empty = wait_for(lambda: (s := httpx.get(f"{url}/admin/drain", headers=ADMIN).json())["empty"]
                     and s, "the drain to report empty")  # fmt: skip
    time.sleep(0.5)  # a few idle polls: a drained consumer must still not take the job
    still = status_of(replica, waiting)
    draining_gauge = samples(httpx.get(f"{url}/metrics").text)[("smartqueue_replica_draining", ())]
    resumed = httpx.post(f"{url}/admin/undrain", headers=ADMIN).json()
    wait_for(lambda: status_of(replica, waiting) == "completed", "the waiting job after undrain")

    assert (drained["draining"], drained["running"], drained["empty"]) == (True, 1, False)
    assert status_of(replica, running) == "completed"
    assert (empty["running"], still) == (0, "queued")
    assert draining_gauge == 1
    assert (resumed["draining"], resumed["empty"]) == (False, False)
    assert [len(events(replica, name)) for name in ("drain", "undrain")] == [1, 1]


def test_drain_needs_the_admin_token(replica: ServiceHandle) -> None:
    assert httpx.post(f"{replica.url}/admin/drain").status_code == 401
    assert httpx.get(f"{replica.url}/admin/drain", headers=ADMIN).json()["draining"] is False


def test_cli_drain_waits_until_empty_then_undrain(replica: ServiceHandle) -> None:
    job_id = httpx.post(f"{replica.url}/enqueue", json=LONG).json()["job_id"]
    wait_for(lambda: status_of(replica, job_id) == "processing", "the long job to start")
    runner = CliRunner()

    drained = runner.invoke(app, ["drain", "--url", replica.url, "--token", TOKEN,
                                  "--wait-s", "20"])  # fmt: skip
    finished = status_of(replica, job_id)
    undrained = runner.invoke(app, ["drain", "--undrain", "--url", replica.url, "--token", TOKEN])

    assert drained.exit_code == 0, drained.stderr
    header, row = drained.stdout.splitlines()
    assert header.split() == ["REPLICA", "DRAINING", "RUNNING", "EMPTY"]
    assert row.split()[1:] == ["True", "0", "True"]
    assert finished == "completed"
    assert undrained.stdout.splitlines()[1].split()[1:] == ["False", "0", "False"]


def test_cli_gpus_prints_a_table_of_the_fleet(replica: ServiceHandle) -> None:
    wait_for(lambda: httpx.get(f"{replica.url}/gpus").json()["gpus"][0]["health"], "a probe")

    result = CliRunner().invoke(app, ["gpus", "--url", replica.url])

    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:4] == ["GPU", "STATE", "BREAKER", "SLOTS"]
    assert row.split()[:4] == ["a", "up", "closed", "0/2"]
