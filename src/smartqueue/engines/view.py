"""The normalised view: what any inference engine says of its own load, at one moment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class EngineView:
    """An engine's own load signals read at `observed_at` (None: this engine does not say).

    `running` counts requests generating now (busy), `waiting` those queued inside the engine,
    `capacity` its concurrent slots, `kv_pressure` the KV cache in use (0..1), `model_resident`
    whether the GPU's model is loaded (Ollama) and `model_vram_mb` the VRAM it holds.
    """

    observed_at: float
    running: int | None = None
    waiting: int | None = None
    capacity: int | None = None
    kv_pressure: float | None = None
    model_resident: bool | None = None
    model_vram_mb: float | None = None

    @property
    def says_nothing(self) -> bool:
        """No signal at all was read (the engine has none, or none could be parsed)."""
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "observed_at")

    @property
    def queue_numbers(self) -> tuple[int | None, int | None]:
        """(running, waiting): the numbers a frozen exporter would repeat."""
        return self.running, self.waiting


Bodies = Mapping[str, str]
"""Raw bodies of the engine's endpoints that answered 200, by path."""

Reader = Callable[[Bodies, str, float], EngineView]
"""Reads the bodies into a view, given the GPU's model name and the observation time."""


@dataclass(frozen=True)
class EngineAdapter:
    """Where an engine tells its liveness and its load, and how to read what it says."""

    health_path: str
    signal_paths: tuple[str, ...]
    read: Reader
