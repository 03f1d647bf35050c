"""Ollama `/api/ps`: the models loaded in memory (`name`/`model`, `size`, `size_vram`).

Ollama has no queue numbers; what it tells is whether the GPU's model is resident. A model that
is not loaded costs a cold start (read from disk into VRAM) before the first token.
"""

from __future__ import annotations

import json
from typing import Any

from smartqueue.engines.view import Bodies, EngineAdapter, EngineView

PS_PATH = "/api/ps"
MIB = 1024 * 1024


def canonical_model(name: str) -> str:
    """Ollama's tag rule: a name without a tag means `:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def read_ps(document: Any, *, model: str, observed_at: float) -> EngineView:
    """Is `model` loaded, and its VRAM; ValueError unless it is `{"models": [...]}`."""
    loaded = document.get("models") if isinstance(document, dict) else None
    if not isinstance(loaded, list) or not all(isinstance(entry, dict) for entry in loaded):
        raise ValueError("/api/ps has no models list")
    wanted = canonical_model(model)
    match = next((entry for entry in loaded if _names(entry) & {wanted}), None)
    if match is None:
        return EngineView(observed_at, model_resident=False, model_vram_mb=0.0)
    size_vram = match.get("size_vram")
    vram_mb = size_vram / MIB if isinstance(size_vram, int | float) else None
    return EngineView(observed_at, model_resident=True, model_vram_mb=vram_mb)


def _names(entry: dict[str, Any]) -> set[str]:
    return {
        canonical_model(entry[key]) for key in ("name", "model") if isinstance(entry.get(key), str)
    }


def read(bodies: Bodies, model: str, observed_at: float) -> EngineView:
    """The view from `/api/ps` (also the liveness check), empty when unparsable."""
    try:
        return read_ps(json.loads(bodies[PS_PATH]), model=model, observed_at=observed_at)
    except (KeyError, ValueError):
        return EngineView(observed_at)


ADAPTER = EngineAdapter(PS_PATH, (), read)
