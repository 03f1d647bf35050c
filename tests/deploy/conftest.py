"""The deployment files under test, read once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dockerfile import Instruction, parse_dockerfile

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
NGINX_CONFIG = REPO / "deploy" / "nginx" / "smartqueue.conf"
SIDECAR_DOCKERFILE = REPO / "deploy" / "sidecar" / "Dockerfile"
SIDECAR_UNIT = REPO / "deploy" / "systemd" / "smartqueue-sidecar.service"

Service = dict[str, Any]


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """compose.yaml as a mapping."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict), "compose.yaml is not a mapping"
    return document


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, Service]:
    """compose.yaml's services by name."""
    found = compose.get("services")
    assert isinstance(found, dict), "compose.yaml has no services mapping"
    return found


@pytest.fixture(scope="session")
def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions."""
    return parse_dockerfile(DOCKERFILE.read_text())
