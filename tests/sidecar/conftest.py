"""Fixtures of the sidecar tests: a fake sysfs tree and a fake `pynvml` on the import path."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sidecar.fake_sysfs import FakeCard, add_card, add_display_only_card

FAKE_PYNVML = Path(__file__).with_name("fake_pynvml.py")
GIB = 1024**3


@dataclass(frozen=True)
class FakeSysfs:
    """A sysfs root with two amdgpu cards (GPU 0 = card0, GPU 1 = card1) and a display card."""

    root: Path
    cards: list[FakeCard]


@pytest.fixture
def fake_sysfs(tmp_path: Path) -> FakeSysfs:
    """Two amdgpu cards with different numbers, plus a display-only card2."""
    root = tmp_path / "sys"
    cards = [add_card(root, 0), add_card(root, 1)]
    add_display_only_card(root, 2)
    cards[0].write(busy_pct=12, vram_used_mib=2048, vram_total_mib=16384, temp_c=41.0)
    cards[1].write(busy_pct=97, vram_used_mib=23000, vram_total_mib=24576, temp_c=78.5)
    return FakeSysfs(root, cards)


@dataclass(frozen=True)
class FakeNvml:
    """The directory holding the fake `pynvml.py`, and the state file it reads."""

    path: Path
    state_file: Path

    def set_state(self, *, gpus: list[dict[str, Any]], init_error: str | None = None) -> None:
        """What NVML answers from now on."""
        self.state_file.write_text(json.dumps({"init_error": init_error, "gpus": gpus}))

    def env(self) -> dict[str, str]:
        """The environment a sidecar process needs to import the fake."""
        return {"PYTHONPATH": str(self.path), "FAKE_PYNVML_STATE": str(self.state_file)}


def nvml_gpu(*, util: int, used_gib: float, total_gib: float, temp: int) -> dict[str, Any]:
    """One fake GPU's numbers (memory in bytes, as NVML answers)."""
    return {"util": util, "used": round(used_gib * GIB), "total": round(total_gib * GIB),
            "temp": temp, "error": None}  # fmt: skip


@pytest.fixture
def fake_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNvml]:
    """A fake `pynvml` first on this process's import path, with two GPUs."""
    directory = tmp_path / "fake-nvml"
    directory.mkdir()
    shutil.copy(FAKE_PYNVML, directory / "pynvml.py")
    fake = FakeNvml(directory, tmp_path / "nvml-state.json")
    fake.set_state(gpus=[nvml_gpu(util=40, used_gib=6, total_gib=24, temp=63),
                         nvml_gpu(util=0, used_gib=0.5, total_gib=12, temp=35)])  # fmt: skip
    monkeypatch.setenv("FAKE_PYNVML_STATE", str(fake.state_file))
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    yield fake
    sys.modules.pop("pynvml", None)
