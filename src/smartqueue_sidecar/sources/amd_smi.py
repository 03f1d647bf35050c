"""AMD GPUs through the `amdsmi` library (ROCm), imported only when asked.

The PyPI package is a ctypes wrapper that fails on import unless ROCm's `libamd_smi.so` is
installed, so the import is guarded and any failure only rules this source out.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from typing import Any, Protocol, cast

from smartqueue_sidecar.readings import GpuReading, ReadError, SourceUnavailable


class AmdSmiModule(Protocol):
    """The part of `amdsmi` the sidecar uses."""

    AmdSmiException: type[Exception]
    AmdSmiTemperatureType: Any
    AmdSmiTemperatureMetric: Any

    def amdsmi_init(self) -> None: ...
    def amdsmi_shut_down(self) -> None: ...
    def amdsmi_get_processor_handles(self) -> list[object]: ...
    def amdsmi_get_gpu_activity(self, handle: object) -> dict[str, Any]: ...
    def amdsmi_get_gpu_vram_usage(self, handle: object) -> dict[str, Any]: ...
    def amdsmi_get_temp_metric(self, handle: object, sensor: Any, metric: Any) -> int: ...


class AmdSmiSource:
    """Reads the GPUs amdsmi saw when it was opened; owns the library until `close`."""

    name = "amdsmi"

    def __init__(self, amdsmi: AmdSmiModule, handles: list[object]) -> None:
        self._amdsmi = amdsmi
        self._handles = handles
        self.devices = [f"amdsmi:{index}" for index in range(len(handles))]

    def read(self, index: int) -> GpuReading:
        """GPU `index`'s numbers from amdsmi now (VRAM comes in MB, temperature in °C)."""
        amdsmi, handle = self._amdsmi, self._handles[index]
        try:
            activity = amdsmi.amdsmi_get_gpu_activity(handle)
            vram = amdsmi.amdsmi_get_gpu_vram_usage(handle)
            temp_c = amdsmi.amdsmi_get_temp_metric(
                handle,
                amdsmi.AmdSmiTemperatureType.EDGE,
                amdsmi.AmdSmiTemperatureMetric.CURRENT,
            )
            return GpuReading(
                gpu_util_pct=float(activity["gfx_activity"]),
                vram_used_mb=float(vram["vram_used"]),
                vram_total_mb=float(vram["vram_total"]),
                temp_c=float(temp_c),
            )
        except (amdsmi.AmdSmiException, KeyError, TypeError, ValueError) as error:
            # gfx_activity is the string "N/A" when the GPU does not report it.
            raise ReadError(f"amdsmi GPU {index}: {error!r}") from None

    def close(self) -> None:
        """Shut amdsmi down."""
        with contextlib.suppress(self._amdsmi.AmdSmiException):  # shutting down anyway
            self._amdsmi.amdsmi_shut_down()


def import_amdsmi() -> AmdSmiModule:
    """The `amdsmi` module; SourceUnavailable when it or ROCm's library is missing."""
    printed = io.StringIO()
    try:
        # Without libamd_smi.so, amdsmi 7.0.2 prints two lines to stdout, then raises KeyError.
        with contextlib.redirect_stdout(printed):
            return cast(AmdSmiModule, importlib.import_module("amdsmi"))
    except ImportError:
        raise SourceUnavailable("amdsmi is not installed (the amd extra)") from None
    except Exception as error:
        said = printed.getvalue().strip().splitlines()
        reason = said[0] if said else repr(error)
        raise SourceUnavailable(f"importing amdsmi failed (ROCm's library?): {reason}") from None


def open_amdsmi() -> AmdSmiSource:
    """amdsmi initialised with its GPUs; SourceUnavailable without a driver or a GPU."""
    amdsmi = import_amdsmi()
    try:
        amdsmi.amdsmi_init()
        handles = list(amdsmi.amdsmi_get_processor_handles())
    except amdsmi.AmdSmiException as error:
        raise SourceUnavailable(f"amdsmi_init failed: {error!r}") from None
    if not handles:
        AmdSmiSource(amdsmi, []).close()
        raise SourceUnavailable("amdsmi sees no GPU")
    return AmdSmiSource(amdsmi, handles)
