"""A generic OpenAI-compatible server: `/v1/models` answers when it is up; no load signals.

Its load is smartqueue's own in-flight count alone (direct traffic stays invisible).
"""

from __future__ import annotations

from smartqueue.engines.view import Bodies, EngineAdapter, EngineView

MODELS_PATH = "/v1/models"


def read(bodies: Bodies, model: str, observed_at: float) -> EngineView:
    """Nothing to read: an empty view."""
    return EngineView(observed_at)


ADAPTER = EngineAdapter(MODELS_PATH, (), read)
