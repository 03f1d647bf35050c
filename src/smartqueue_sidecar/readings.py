"""What every source returns: one reading per GPU, behind one small interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

BYTES_PER_MB = 1024 * 1024


class SourceUnavailable(Exception):
    """A source cannot serve this host (no library, no driver, no device)."""


class ReadError(Exception):
    """One GPU's numbers cannot be read right now."""


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU at one moment, in the units of the draft's `/health` JSON."""

    gpu_util_pct: float
    vram_used_mb: float
    vram_total_mb: float
    temp_c: float

    def as_json(self) -> dict[str, float]:
        """The draft's `/health` document."""
        return {
            "gpu_util_pct": self.gpu_util_pct,
            "vram_used_mb": self.vram_used_mb,
            "vram_total_mb": self.vram_total_mb,
            "temp_c": self.temp_c,
        }


class GpuSource(Protocol):
    """A way to read this host's GPUs; GPU indices run from 0 to `len(devices) - 1`."""

    name: str
    devices: list[str]

    def read(self, index: int) -> GpuReading:
        """GPU `index`'s reading now; ReadError when it cannot be read."""
        ...

    def close(self) -> None:
        """Release the library, if the source holds one."""
        ...


def mb(byte_count: float) -> float:
    """Bytes as MiB (what the draft and the fleet file call MB), to one decimal."""
    return round(byte_count / BYTES_PER_MB, 1)
