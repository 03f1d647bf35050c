"""Fixtures of the Nginx tests: the nginx binary, required under CI=true."""

from __future__ import annotations

import pytest

from tests.support.binaries import require_binary


@pytest.fixture
def nginx_binary() -> str:
    """Path of nginx; a missing binary fails under CI=true and skips elsewhere."""
    return require_binary("nginx")
