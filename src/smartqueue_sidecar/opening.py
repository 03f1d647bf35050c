"""Choosing the source: the one asked for, or with `auto` the first that works of NVML,
amdsmi and sysfs."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from smartqueue_sidecar.readings import GpuSource, ReadError, SourceUnavailable
from smartqueue_sidecar.sources.amd_smi import open_amdsmi
from smartqueue_sidecar.sources.nvml import open_nvml
from smartqueue_sidecar.sources.sysfs import open_sysfs


class SourceChoice(StrEnum):
    """`--source`: one source, or `auto` to try each in turn."""

    AUTO = "auto"
    NVML = "nvml"
    AMDSMI = "amdsmi"
    SYSFS = "sysfs"


AUTO_ORDER = (SourceChoice.NVML, SourceChoice.AMDSMI, SourceChoice.SYSFS)


def open_source(choice: SourceChoice, *, sysfs_root: Path) -> GpuSource:
    """The first usable source; SourceUnavailable naming every source tried and why."""
    openers: dict[SourceChoice, Callable[[], GpuSource]] = {
        SourceChoice.NVML: open_nvml,
        SourceChoice.AMDSMI: open_amdsmi,
        SourceChoice.SYSFS: lambda: open_sysfs(sysfs_root),
    }
    reasons: list[str] = []
    for name in AUTO_ORDER if choice is SourceChoice.AUTO else (choice,):
        try:
            return readable(openers[name]())
        except SourceUnavailable as error:
            reasons.append(f"{name}: {error}")
    raise SourceUnavailable("no usable GPU source; tried " + "; ".join(reasons))


def readable(source: GpuSource) -> GpuSource:
    """`source` once GPU 0 has been read through it; a source that opens but cannot read is
    no better than none."""
    try:
        source.read(0)
    except ReadError as error:
        source.close()
        raise SourceUnavailable(f"GPU 0 cannot be read: {error}") from None
    return source
