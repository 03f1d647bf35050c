"""The NVML source with a fake `pynvml` module: in this process and in a sidecar process."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from smartqueue_sidecar.opening import SourceChoice, open_source
from smartqueue_sidecar.readings import GpuReading, ReadError, SourceUnavailable
from tests.sidecar.conftest import FakeNvml, FakeSysfs, nvml_gpu
from tests.sidecar.process import running_sidecar


def open_nvml_source(tmp_path: Path) -> tuple[list[str], GpuReading, GpuReading]:
    """Devices and both readings through `--source nvml`."""
    source = open_source(SourceChoice.NVML, sysfs_root=tmp_path)
    try:
        return source.devices, source.read(0), source.read(1)
    finally:
        source.close()


def test_nvml_source_reads_each_gpu_in_draft_units(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    devices, first, second = open_nvml_source(tmp_path)
    assert devices == ["nvml:0", "nvml:1"]
    assert first == GpuReading(gpu_util_pct=40.0, vram_used_mb=6144.0, vram_total_mb=24576.0,
                               temp_c=63.0)  # fmt: skip
    assert second.vram_used_mb == 512.0


def test_nvml_source_close_shuts_nvml_down(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    open_nvml_source(tmp_path)
    assert sys.modules["pynvml"].CALLS == ["nvmlInit", "nvmlShutdown"]


def test_nvml_source_with_gpu_error_raises_read_error(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    source = open_source(SourceChoice.NVML, sysfs_root=tmp_path)
    gpus = [nvml_gpu(util=1, used_gib=1, total_gib=8, temp=40), {"error": "GPU is lost"}]
    fake_nvml.set_state(gpus=gpus)
    with pytest.raises(ReadError, match="NVML GPU 1: GPU is lost"):
        source.read(1)
    assert source.read(0).vram_total_mb == 8192.0


@pytest.mark.parametrize(
    ("init_error", "reason"),
    [("Driver Not Loaded", "nvmlInit failed: Driver Not Loaded"), (None, "NVML sees no GPU")],
)
def test_nvml_source_without_driver_or_gpu_is_unavailable(
    fake_nvml: FakeNvml, tmp_path: Path, init_error: str | None, reason: str
) -> None:
    fake_nvml.set_state(gpus=[], init_error=init_error)
    with pytest.raises(SourceUnavailable, match=f"tried nvml: .*{reason}"):
        open_source(SourceChoice.NVML, sysfs_root=tmp_path)


def test_nvml_source_without_pynvml_says_it_is_not_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    with pytest.raises(SourceUnavailable, match="pynvml is not installed"):
        open_source(SourceChoice.NVML, sysfs_root=tmp_path)


def test_auto_with_nvml_and_amd_cards_prefers_nvml(
    fake_nvml: FakeNvml, fake_sysfs: FakeSysfs
) -> None:
    source = open_source(SourceChoice.AUTO, sysfs_root=fake_sysfs.root)
    source.close()
    assert source.name == "nvml"


@pytest.mark.slow
def test_sidecar_process_with_fake_pynvml_serves_each_gpu(fake_nvml: FakeNvml) -> None:
    with running_sidecar(["--source", "nvml"], env=fake_nvml.env()) as url:
        first = httpx.get(f"{url}/health", timeout=5.0).json()
        fake_nvml.set_state(gpus=[nvml_gpu(util=99, used_gib=23, total_gib=24, temp=86),
                                  nvml_gpu(util=5, used_gib=1, total_gib=12, temp=36)])  # fmt: skip
        second = httpx.get(f"{url}/health", timeout=5.0).json()
        gpu_1 = httpx.get(f"{url}/health", params={"gpu": 1}, timeout=5.0).json()
        livez = httpx.get(f"{url}/livez", timeout=5.0)
    assert first == {"gpu_util_pct": 40.0, "vram_used_mb": 6144.0, "vram_total_mb": 24576.0,
                     "temp_c": 63.0}  # fmt: skip
    assert (second["gpu_util_pct"], second["temp_c"]) == (99.0, 86.0)
    assert gpu_1["vram_total_mb"] == 12288.0
    assert livez.json() == {"status": "ok", "source": "nvml", "gpus": 2, "errors": {}}
