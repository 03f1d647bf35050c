"""A fake `/sys` tree with amdgpu cards, built in a temp dir for `--sysfs-root`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class FakeCard:
    """One amdgpu card's files under `<root>/class/drm/cardN/device`."""

    device: Path

    def write(
        self, *, busy_pct: int, vram_used_mib: int, vram_total_mib: int, temp_c: float
    ) -> None:
        """Set every number the sidecar reads, in the driver's own units."""
        self.set("gpu_busy_percent", busy_pct)
        self.set("mem_info_vram_used", vram_used_mib * MIB)
        self.set("mem_info_vram_total", vram_total_mib * MIB)
        self.set("hwmon/hwmon2/temp1_input", round(temp_c * 1000))

    def set(self, name: str, value: int | str) -> None:
        """Write one file (sysfs files end with a newline)."""
        path = self.device / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")

    def remove(self, name: str) -> None:
        """Delete one file, as when the driver stops exposing it."""
        (self.device / name).unlink()


def add_card(sysfs_root: Path, number: int) -> FakeCard:
    """An amdgpu card `cardN` with idle numbers, and a display connector beside it."""
    drm = sysfs_root / "class" / "drm"
    card = FakeCard(drm / f"card{number}" / "device")
    card.write(busy_pct=0, vram_used_mib=512, vram_total_mib=16384, temp_c=35.0)
    (drm / f"card{number}-DP-1").mkdir(parents=True)
    return card


def add_display_only_card(sysfs_root: Path, number: int) -> None:
    """A card of another driver (no `gpu_busy_percent`): it takes no GPU index."""
    (sysfs_root / "class" / "drm" / f"card{number}" / "device" / "hwmon").mkdir(parents=True)
