"""The soak runs only from `make soak` (SMARTQUEUE_SOAK_S set; tests/conftest.py leaves this
folder out of every other run): it takes minutes."""

from __future__ import annotations

from tests.chaos.conftest import chaos_settings, engine_settings, replicas, sims

__all__ = ["chaos_settings", "engine_settings", "replicas", "sims"]
