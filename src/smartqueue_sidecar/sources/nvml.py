"""NVIDIA GPUs through NVML (`pynvml` from the nvidia-ml-py package), imported only when asked."""

from __future__ import annotations

import contextlib
import importlib
from typing import Protocol, cast

from smartqueue_sidecar.readings import GpuReading, ReadError, SourceUnavailable, mb


class Utilization(Protocol):
    """`nvmlDeviceGetUtilizationRates`'s answer (percent over the last sample period)."""

    gpu: int


class MemoryInfo(Protocol):
    """`nvmlDeviceGetMemoryInfo`'s answer, in bytes."""

    used: int
    total: int


class NvmlModule(Protocol):
    """The part of `pynvml` the sidecar uses."""

    NVML_TEMPERATURE_GPU: int
    NVMLError: type[Exception]

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> object: ...
    def nvmlDeviceGetUtilizationRates(self, handle: object) -> Utilization: ...
    def nvmlDeviceGetMemoryInfo(self, handle: object) -> MemoryInfo: ...
    def nvmlDeviceGetTemperature(self, handle: object, sensor: int) -> int: ...


class NvmlSource:
    """Reads the GPUs NVML saw when it was opened; owns NVML until `close`."""

    name = "nvml"

    def __init__(self, nvml: NvmlModule, handles: list[object]) -> None:
        self._nvml = nvml
        self._handles = handles
        self.devices = [f"nvml:{index}" for index in range(len(handles))]

    def read(self, index: int) -> GpuReading:
        """GPU `index`'s numbers from NVML now."""
        nvml, handle = self._nvml, self._handles[index]
        try:
            utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            temp_c = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
        except nvml.NVMLError as error:
            raise ReadError(f"NVML GPU {index}: {error}") from None
        return GpuReading(
            gpu_util_pct=float(utilization.gpu),
            vram_used_mb=mb(memory.used),
            vram_total_mb=mb(memory.total),
            temp_c=float(temp_c),
        )

    def close(self) -> None:
        """Shut NVML down."""
        with contextlib.suppress(self._nvml.NVMLError):  # shutting down anyway
            self._nvml.nvmlShutdown()


def import_pynvml() -> NvmlModule:
    """The `pynvml` module; SourceUnavailable when it is not installed."""
    try:
        return cast(NvmlModule, importlib.import_module("pynvml"))
    except ImportError:
        raise SourceUnavailable("pynvml is not installed (the nvidia extra)") from None
    except Exception as error:  # a broken install only rules this source out
        raise SourceUnavailable(f"importing pynvml failed: {error!r}") from None


def open_nvml() -> NvmlSource:
    """NVML initialised with its GPUs; SourceUnavailable without a driver or a GPU."""
    nvml = import_pynvml()
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as error:
        raise SourceUnavailable(f"nvmlInit failed: {error}") from None
    try:
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
    except nvml.NVMLError as error:
        NvmlSource(nvml, []).close()
        raise SourceUnavailable(f"cannot list GPUs: {error}") from None
    if not handles:
        NvmlSource(nvml, []).close()
        raise SourceUnavailable("NVML sees no GPU")
    return NvmlSource(nvml, handles)
