"""A fake `pynvml`: tests copy this file as `pynvml.py` into a temp dir on the import path.

It reads the state JSON named by $FAKE_PYNVML_STATE on every call, so a test (or a test's
sidecar process) sees numbers change between two reads:

    {"init_error": null, "gpus": [{"util": 40, "used": 1073741824, "total": 8589934592,
                                   "temp": 61, "error": null}]}

Memory in bytes, as NVML answers; `init_error` / `error` make nvmlInit / one GPU's calls fail.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NVML_TEMPERATURE_GPU = 0
CALLS: list[str] = []


class NVMLError(Exception):
    """Every NVML failure."""


@dataclass(frozen=True)
class Utilization:
    gpu: int
    memory: int


@dataclass(frozen=True)
class Memory:
    total: int
    free: int
    used: int


def _state() -> dict[str, Any]:
    state: dict[str, Any] = json.loads(Path(os.environ["FAKE_PYNVML_STATE"]).read_text())
    return state


def _gpu(handle: object) -> dict[str, Any]:
    assert isinstance(handle, int)
    gpu: dict[str, Any] = _state()["gpus"][handle]
    if gpu.get("error"):
        raise NVMLError(gpu["error"])
    return gpu


def nvmlInit() -> None:
    CALLS.append("nvmlInit")
    if error := _state().get("init_error"):
        raise NVMLError(error)


def nvmlShutdown() -> None:
    CALLS.append("nvmlShutdown")


def nvmlDeviceGetCount() -> int:
    return len(_state()["gpus"])


def nvmlDeviceGetHandleByIndex(index: int) -> object:
    if not 0 <= index < nvmlDeviceGetCount():
        raise NVMLError("Invalid Argument")
    return index


def nvmlDeviceGetUtilizationRates(handle: object) -> Utilization:
    return Utilization(gpu=_gpu(handle)["util"], memory=0)


def nvmlDeviceGetMemoryInfo(handle: object) -> Memory:
    gpu = _gpu(handle)
    return Memory(total=gpu["total"], free=gpu["total"] - gpu["used"], used=gpu["used"])


def nvmlDeviceGetTemperature(handle: object, sensor: int) -> int:
    assert sensor == NVML_TEMPERATURE_GPU
    temp: int = _gpu(handle)["temp"]
    return temp
