"""With no usable GPU library or device the sidecar says so in one line and exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smartqueue.cli import app
from tests.sidecar.process import run_sidecar

pytestmark = pytest.mark.slow
GPU_DEVICE_NODES = [Path("/dev/nvidiactl"), Path("/dev/kfd")]


def without_gpu_libraries(tmp_path: Path) -> dict[str, str]:
    """An import path on which `pynvml` and `amdsmi` look not installed."""
    shadow = tmp_path / "no-gpu-libraries"
    shadow.mkdir()
    for module in ("pynvml", "amdsmi"):
        (shadow / f"{module}.py").write_text(f'raise ImportError("No module named {module!r}")\n')
    return {"PYTHONPATH": str(shadow)}


def assert_one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal's line, after checking exit code 2, one stderr line, no traceback."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    return line


def test_no_pynvml_no_amdsmi_empty_sysfs_exits_2_naming_each_source(tmp_path: Path) -> None:
    empty = tmp_path / "sys"
    empty.mkdir()
    result = run_sidecar(["--sysfs-root", str(empty)], env=without_gpu_libraries(tmp_path))
    line = assert_one_line_refusal(result)
    assert line.startswith("smartqueue-sidecar: no usable GPU source; tried ")
    assert "nvml: pynvml is not installed" in line
    assert "amdsmi: amdsmi is not installed" in line
    assert f"sysfs: no {empty}/class/drm/card*/device/gpu_busy_percent" in line


@pytest.mark.skipif(
    any(node.exists() for node in GPU_DEVICE_NODES), reason="this machine has a GPU driver"
)
def test_installed_libraries_without_driver_exit_2_quietly(tmp_path: Path) -> None:
    result = run_sidecar(["--sysfs-root", str(tmp_path)])
    line = assert_one_line_refusal(result)
    assert "nvml: nvmlInit failed: NVML Shared Library Not Found" in line
    assert "amdsmi: importing amdsmi failed" in line, "amdsmi's own prints stay off stdout"


def test_source_sysfs_with_unreadable_card0_exits_2(tmp_path: Path) -> None:
    device = tmp_path / "class" / "drm" / "card0" / "device"
    device.mkdir(parents=True)
    (device / "gpu_busy_percent").write_text("5\n")
    line = assert_one_line_refusal(
        run_sidecar(["--source", "sysfs", "--sysfs-root", str(tmp_path)])
    )
    assert "sysfs: GPU 0 cannot be read: cannot read" in line
    assert "mem_info_vram_used" in line


def test_smartqueue_sidecar_alias_without_package_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "smartqueue_sidecar.cli", None)
    result = CliRunner().invoke(app, ["sidecar", "--port", "8090"])
    assert result.exit_code == 2
    assert result.output.startswith("error: the GPU sidecar is not installed")
    assert len(result.output.splitlines()) == 1


def test_sidecar_package_imports_nothing_from_smartqueue() -> None:
    code = (
        "import sys, smartqueue_sidecar.cli\n"
        "leaked = [m for m in sys.modules if m.split('.')[0] == 'smartqueue']\n"
        "assert not leaked, leaked\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
