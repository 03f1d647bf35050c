"""The sysfs source as a real `smartqueue-sidecar` process over a fake sysfs tree."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.sidecar.conftest import FakeNvml, FakeSysfs
from tests.sidecar.process import ALIAS, running_sidecar

pytestmark = pytest.mark.slow


@pytest.fixture
def sidecar(fake_sysfs: FakeSysfs) -> Iterator[httpx.Client]:
    """A client of a sidecar process reading the fake tree."""
    args = ["--source", "sysfs", "--sysfs-root", str(fake_sysfs.root)]
    with running_sidecar(args) as url, httpx.Client(base_url=url, timeout=5.0) as client:
        yield client


def test_health_without_gpu_reads_card0_in_draft_units(sidecar: httpx.Client) -> None:
    response = sidecar.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "gpu_util_pct": 12.0, "vram_used_mb": 2048.0, "vram_total_mb": 16384.0, "temp_c": 41.0,
    }  # fmt: skip


def test_health_with_gpu_1_reads_card1(sidecar: httpx.Client) -> None:
    assert sidecar.get("/health", params={"gpu": 1}).json() == {
        "gpu_util_pct": 97.0, "vram_used_mb": 23000.0, "vram_total_mb": 24576.0, "temp_c": 78.5,
    }  # fmt: skip


def test_health_with_numbers_changed_between_reads_answers_new_numbers(
    sidecar: httpx.Client, fake_sysfs: FakeSysfs
) -> None:
    first = sidecar.get("/health", params={"gpu": 1}).json()
    fake_sysfs.cards[1].write(busy_pct=3, vram_used_mib=1024, vram_total_mib=24576, temp_c=50.25)
    second = sidecar.get("/health", params={"gpu": 1}).json()
    assert first["gpu_util_pct"] == 97.0
    assert second == {
        "gpu_util_pct": 3.0, "vram_used_mb": 1024.0, "vram_total_mb": 24576.0, "temp_c": 50.25,
    }  # fmt: skip


def test_health_with_unknown_gpu_is_404_naming_existing_gpus(sidecar: httpx.Client) -> None:
    response = sidecar.get("/health", params={"gpu": 2})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "unknown_gpu"
    assert error["gpus"] == [0, 1]
    assert "GPUs: 0, 1" in error["message"]


def test_gpus_lists_amdgpu_cards_only(sidecar: httpx.Client) -> None:
    body = sidecar.get("/gpus").json()
    assert body["source"] == "sysfs"
    assert [(gpu["gpu"], gpu["device"]) for gpu in body["gpus"]] == [(0, "card0"), (1, "card1")]
    assert body["gpus"][1]["gpu_util_pct"] == 97.0


def test_livez_with_every_card_readable_is_200(sidecar: httpx.Client) -> None:
    response = sidecar.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "source": "sysfs", "gpus": 2, "errors": {}}


def test_missing_vram_file_makes_that_gpu_503_and_livez_503(
    sidecar: httpx.Client, fake_sysfs: FakeSysfs
) -> None:
    fake_sysfs.cards[1].remove("mem_info_vram_used")
    response = sidecar.get("/health", params={"gpu": 1})
    livez = sidecar.get("/livez")
    assert response.status_code == 503
    assert "mem_info_vram_used" in response.json()["error"]["message"]
    assert sidecar.get("/health").status_code == 200, "GPU 0 still answers"
    assert livez.status_code == 503
    assert list(livez.json()["errors"]) == ["1"]
    assert "mem_info_vram_used" in livez.json()["errors"]["1"]


def test_missing_hwmon_temperature_is_503_naming_it(
    sidecar: httpx.Client, fake_sysfs: FakeSysfs
) -> None:
    fake_sysfs.cards[0].remove("hwmon/hwmon2/temp1_input")
    response = sidecar.get("/health")
    assert response.status_code == 503
    assert "temp1_input" in response.json()["error"]["message"]
    gpus = sidecar.get("/gpus").json()["gpus"]
    assert "error" in gpus[0]
    assert gpus[1]["temp_c"] == 78.5


def test_garbage_in_a_file_is_503_not_500(sidecar: httpx.Client, fake_sysfs: FakeSysfs) -> None:
    fake_sysfs.cards[0].set("gpu_busy_percent", "busy")
    response = sidecar.get("/health")
    assert response.status_code == 503
    assert "not a number" in response.json()["error"]["message"]


def test_smartqueue_sidecar_alias_serves_the_same_health(fake_sysfs: FakeSysfs) -> None:
    args = ["--source", "sysfs", "--sysfs-root", str(fake_sysfs.root)]
    with running_sidecar(args, command=ALIAS) as url:
        response = httpx.get(f"{url}/health", params={"gpu": 1}, timeout=5.0)
    assert response.json()["vram_total_mb"] == 24576.0


def test_auto_with_nvml_driver_not_loaded_falls_back_to_sysfs(
    fake_sysfs: FakeSysfs, fake_nvml: FakeNvml
) -> None:
    fake_nvml.set_state(gpus=[], init_error="Driver Not Loaded")
    with running_sidecar(["--sysfs-root", str(fake_sysfs.root)], env=fake_nvml.env()) as url:
        body = httpx.get(f"{url}/gpus", timeout=5.0).json()
    assert body["source"] == "sysfs"
