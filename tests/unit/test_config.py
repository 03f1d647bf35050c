"""The fleet file: a valid one loads, a bad one stops start-up with one line naming the field."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from smartqueue.config import FleetError, Settings, load_fleet, parse_fleet
from tests.conftest import REPO

FLEET: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "fleet.local.yaml").read_text())


def broken(path: list[str | int], value: Any) -> dict[str, Any]:
    """A copy of the local fleet with one value replaced (None deletes it)."""
    document = copy.deepcopy(FLEET)
    target: Any = document
    for part in path[:-1]:
        target = target[part]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


@pytest.mark.parametrize("path", ["deploy/fleet.yaml", "deploy/fleet.local.yaml"])
def test_committed_fleet_files_load(path: str) -> None:
    fleet = load_fleet(REPO / path)

    assert [gpu.name for gpu in fleet.gpus] == ["amdpve", "llmgpu", "ocu_llm"]
    assert fleet.route_gpus("heavy")[0].name == "llmgpu"


@pytest.mark.parametrize("path", ["deploy/fleet.yaml", "deploy/fleet.local.yaml"])
def test_committed_fleet_files_use_host_names_not_ip_literals(path: str) -> None:
    text = (REPO / path).read_text()

    assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b|\[[0-9a-fA-F:]+\]", text)


@pytest.mark.parametrize(
    ("document", "names"),
    [
        (broken(["routes", "heavy", 0], "nosuchgpu"), ["routes.heavy[0]", "nosuchgpu"]),
        (broken(["gpus", 1, "name"], "amdpve"), ["gpus[1].name", "duplicate"]),
        (broken(["gpus", 0, "url"], "ftp://amdpve"), ["gpus[0].url", "http"]),
        (broken(["gpus", 2, "sidecar_url"], "not a url"), ["gpus[2].sidecar_url"]),
        (broken(["gpus", 0, "slots"], None), ["gpus[0].slots", "required"]),
        (broken(["gpus", 0, "slots"], 0), ["gpus[0].slots"]),
        (broken(["gpus", 0, "engine"], "tgi"), ["gpus[0].engine"]),
        (broken(["routes", "default"], None), ["default"]),
        (broken(["routes", "light"], []), ["routes.light"]),
        (broken(["gpus", 0, "colour"], "red"), ["gpus[0].colour"]),
    ],
)
def test_bad_fleet_is_one_line_naming_the_field(document: dict[str, Any], names: list[str]) -> None:
    with pytest.raises(FleetError) as caught:
        parse_fleet(document, source="fleet.yaml")

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("fleet.yaml: ")
    assert all(name in message for name in names), message


def test_missing_or_unparsable_fleet_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("gpus: [\n")

    with pytest.raises(FleetError, match="not valid YAML"):
        load_fleet(bad)
    with pytest.raises(FleetError, match="cannot read"):
        load_fleet(tmp_path / "missing.yaml")


def run_serve(**env: str) -> subprocess.CompletedProcess[str]:
    """`smartqueue serve` with extra environment variables (it should refuse to start)."""
    return subprocess.run(
        [sys.executable, "-m", "smartqueue", "serve", "--port", "1"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_serve_with_bad_fleet_exits_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text(yaml.safe_dump(broken(["routes", "light", 0], "ghost")))

    done = run_serve(SMARTQUEUE_FLEET=str(bad))

    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "routes.light[0]: unknown GPU 'ghost'" in done.stderr
    assert "Traceback" not in done.stderr


def test_settings_defaults_follow_the_draft(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SMARTQUEUE_"):
            monkeypatch.delenv(name)
    settings = Settings()

    assert (settings.queue_warn_depth, settings.queue_overload_depth) == (30, 40)
    assert (settings.queue_open_depth, settings.max_retries) == (50, 3)
    assert (settings.job_timeout_s, settings.probe_interval_s) == (300, 5)
    assert (settings.breaker_failure_threshold, settings.breaker_recovery_s) == (3, 30)


def test_settings_come_from_smartqueue_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTQUEUE_MAX_RETRIES", "7")
    monkeypatch.setenv("SMARTQUEUE_ADMIN_TOKEN", "tok")

    settings = Settings()

    assert settings.max_retries == 7
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "tok"


def test_serve_with_a_bad_setting_names_the_variable_in_one_line() -> None:
    done = run_serve(SMARTQUEUE_MAX_RETRIES="many")

    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("smartqueue: settings: SMARTQUEUE_MAX_RETRIES: ")
