"""Finding the real programs the tests run; under CI=true a missing one fails the test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def require_binary(name: str) -> str:
    """Path of `name`; fails under CI=true and skips elsewhere when it is not installed."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found:
        return found
    message = f"{name} is not installed (make test installs it: apt-get install {name})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
