"""AMD GPUs through the amdgpu driver's sysfs files; the root is `/sys` unless told otherwise.

Per card: `class/drm/cardN/device/gpu_busy_percent`, `mem_info_vram_used` and
`mem_info_vram_total` (bytes), and `device/hwmon/hwmon*/temp1_input` (millidegrees, the edge
sensor). GPU indices follow the card numbers of the amdgpu cards only, so a display-only card
(no `gpu_busy_percent`) takes no index.
"""

from __future__ import annotations

import re
from pathlib import Path

from smartqueue_sidecar.readings import GpuReading, ReadError, SourceUnavailable, mb

CARD_NAME = re.compile(r"card(\d+)")
MILLIDEGREES_PER_C = 1000


class SysfsSource:
    """Reads the amdgpu files of the cards found when it was opened."""

    name = "sysfs"

    def __init__(self, cards: list[Path]) -> None:
        self._devices = [card / "device" for card in cards]
        self.devices = [card.name for card in cards]

    def read(self, index: int) -> GpuReading:
        """GPU `index`'s files read now."""
        device = self._devices[index]
        return GpuReading(
            gpu_util_pct=read_number(device / "gpu_busy_percent"),
            vram_used_mb=mb(read_number(device / "mem_info_vram_used")),
            vram_total_mb=mb(read_number(device / "mem_info_vram_total")),
            temp_c=read_number(temperature_file(device)) / MILLIDEGREES_PER_C,
        )

    def close(self) -> None:
        """Nothing to release."""


def open_sysfs(sysfs_root: Path) -> SysfsSource:
    """The amdgpu cards under `sysfs_root`; SourceUnavailable when there is none."""
    drm = sysfs_root / "class" / "drm"
    cards = sorted((path for path in drm.glob("card*") if is_amdgpu_card(path)), key=card_number)
    if not cards:
        raise SourceUnavailable(f"no {drm}/card*/device/gpu_busy_percent (no amdgpu card)")
    return SysfsSource(cards)


def is_amdgpu_card(path: Path) -> bool:
    """A `cardN` directory (not a connector such as `card0-DP-1`) of the amdgpu driver."""
    return (
        CARD_NAME.fullmatch(path.name) is not None
        and (path / "device" / "gpu_busy_percent").is_file()
    )


def card_number(path: Path) -> int:
    """N of `cardN`, so card10 sorts after card9."""
    found = CARD_NAME.fullmatch(path.name)
    return int(found.group(1)) if found else -1


def temperature_file(device: Path) -> Path:
    """The first hwmon directory's `temp1_input`."""
    candidates = sorted(device.glob("hwmon/hwmon*/temp1_input"))
    if not candidates:
        raise ReadError(f"no {device}/hwmon/hwmon*/temp1_input")
    return candidates[0]


def read_number(path: Path) -> float:
    """The number a sysfs file holds; ReadError naming the file when it cannot be read."""
    try:
        text = path.read_text().strip()
    except OSError as error:
        raise ReadError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return float(text)
    except ValueError:
        raise ReadError(f"{path} holds {text!r}, not a number") from None
