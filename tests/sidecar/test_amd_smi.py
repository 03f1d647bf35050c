"""The amdsmi source with a fake `amdsmi` module in sys.modules (the real one needs ROCm)."""

from __future__ import annotations

import sys
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest

from smartqueue_sidecar.opening import SourceChoice, open_source
from smartqueue_sidecar.readings import GpuReading, ReadError, SourceUnavailable
from tests.sidecar.conftest import FakeSysfs


class AmdSmiException(Exception):
    """The library's base error."""


class AmdSmiTemperatureType(IntEnum):
    EDGE = 0
    HOTSPOT = 1


class AmdSmiTemperatureMetric(IntEnum):
    CURRENT = 0


class FakeAmdSmi:
    """amdsmi's calls over a list of GPUs (VRAM in MB, as amdsmi answers)."""

    AmdSmiException = AmdSmiException
    AmdSmiTemperatureType = AmdSmiTemperatureType
    AmdSmiTemperatureMetric = AmdSmiTemperatureMetric

    def __init__(self, gpus: list[dict[str, Any]], *, init_error: str | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.shut_down = False

    def amdsmi_init(self) -> None:
        if self.init_error:
            raise AmdSmiException(self.init_error)

    def amdsmi_shut_down(self) -> None:
        self.shut_down = True

    def amdsmi_get_processor_handles(self) -> list[object]:
        return list(range(len(self.gpus)))

    def amdsmi_get_gpu_activity(self, handle: object) -> dict[str, Any]:
        return {"gfx_activity": self.gpu(handle)["gfx"], "umc_activity": 0, "mm_activity": 0}

    def amdsmi_get_gpu_vram_usage(self, handle: object) -> dict[str, Any]:
        gpu = self.gpu(handle)
        return {"vram_total": gpu["total_mb"], "vram_used": gpu["used_mb"]}

    def amdsmi_get_temp_metric(self, handle: object, sensor: Any, metric: Any) -> int:
        assert (sensor, metric) == (AmdSmiTemperatureType.EDGE, AmdSmiTemperatureMetric.CURRENT)
        temp: int = self.gpu(handle)["temp"]
        return temp

    def gpu(self, handle: object) -> dict[str, Any]:
        assert isinstance(handle, int)
        return self.gpus[handle]


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeAmdSmi | None) -> None:
    """`import amdsmi` gives `fake` (None: as if not installed); pynvml looks not installed."""
    monkeypatch.setitem(sys.modules, "amdsmi", fake)
    monkeypatch.setitem(sys.modules, "pynvml", None)


GPU = {"gfx": 55, "used_mb": 30000, "total_mb": 65536, "temp": 71}


def test_amdsmi_source_reads_gpu_in_draft_units(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeAmdSmi([GPU])
    install(monkeypatch, fake)
    source = open_source(SourceChoice.AMDSMI, sysfs_root=tmp_path)
    reading = source.read(0)
    source.close()
    assert reading == GpuReading(gpu_util_pct=55.0, vram_used_mb=30000.0, vram_total_mb=65536.0,
                                 temp_c=71.0)  # fmt: skip
    assert fake.shut_down


def test_amdsmi_source_with_activity_not_reported_raises_read_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeAmdSmi([GPU, GPU])
    install(monkeypatch, fake)
    source = open_source(SourceChoice.AMDSMI, sysfs_root=tmp_path)
    fake.gpus[1] = {**GPU, "gfx": "N/A"}
    with pytest.raises(ReadError, match="amdsmi GPU 1"):
        source.read(1)


def test_auto_without_nvml_prefers_amdsmi_over_sysfs(
    monkeypatch: pytest.MonkeyPatch, fake_sysfs: FakeSysfs
) -> None:
    install(monkeypatch, FakeAmdSmi([GPU]))
    assert open_source(SourceChoice.AUTO, sysfs_root=fake_sysfs.root).name == "amdsmi"


def test_auto_with_amdsmi_init_failing_falls_back_to_sysfs(
    monkeypatch: pytest.MonkeyPatch, fake_sysfs: FakeSysfs
) -> None:
    install(monkeypatch, FakeAmdSmi([GPU], init_error="AMDSMI_STATUS_DRIVER_NOT_LOADED"))
    assert open_source(SourceChoice.AUTO, sysfs_root=fake_sysfs.root).name == "sysfs"


@pytest.mark.parametrize(
    ("fake", "reason"),
    [(None, "amdsmi is not installed"), (FakeAmdSmi([]), "amdsmi sees no GPU")],
)
def test_amdsmi_source_without_library_or_gpu_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeAmdSmi | None, reason: str
) -> None:
    install(monkeypatch, fake)
    with pytest.raises(SourceUnavailable, match=f"tried amdsmi: {reason}"):
        open_source(SourceChoice.AMDSMI, sysfs_root=tmp_path)
