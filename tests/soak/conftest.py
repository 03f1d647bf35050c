"""The soak runs only from `make soak` (SMARTQUEUE_SOAK_S set): it takes minutes."""

from __future__ import annotations

import os

import pytest

from tests.chaos.conftest import chaos_settings, engine_settings, replicas, sims

__all__ = ["chaos_settings", "engine_settings", "replicas", "sims"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the soak unless asked for."""
    if os.environ.get("SMARTQUEUE_SOAK_S"):
        return
    skip = pytest.mark.skip(reason="the soak runs from `make soak` (set SMARTQUEUE_SOAK_S)")
    for item in items:
        if "tests/soak/" in str(item.fspath):
            item.add_marker(skip)
