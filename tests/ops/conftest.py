"""Operations against a real replica (`smartqueue serve` as a process), sims and redis-server."""

from __future__ import annotations

import json
from typing import Any

from tests.chaos.conftest import sims  # sims as processes: a replica process must reach them
from tests.engine.conftest import engine_settings
from tests.support.service import ServiceHandle

__all__ = ["engine_settings", "log_lines", "sims"]


def log_lines(replica: ServiceHandle) -> list[dict[str, Any]]:
    """Every line the replica wrote to stderr, each parsed as the JSON object it must be."""
    text = replica.log_file.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def events(replica: ServiceHandle, name: str, **match: Any) -> list[dict[str, Any]]:
    """The log lines of event `name` whose fields equal `match`."""
    return [line for line in log_lines(replica) if line.get("event") == name
            and all(line.get(key) == value for key, value in match.items())]  # fmt: skip
