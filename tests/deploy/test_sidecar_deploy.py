"""The GPU sidecar's deployment: its image, its compose service and its systemd unit."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.conftest import DOCKERIGNORE, REPO, SIDECAR_DOCKERFILE, SIDECAR_UNIT, Service
from tests.deploy.dockerfile import Instruction, env_of, parse_dockerfile, stages
from tests.deploy.dockerignore import is_excluded, parse_dockerignore
from tests.deploy.test_dockerfile import PINNED_BASE, ROOT_USERS, copied_sources, run_hadolint
from tests.support.binaries import require_binary

LIVEZ_CHECK = "urllib.request.urlopen('http://localhost:8090/livez', timeout=4)"
SIDECAR_SCRIPT = Path(sys.executable).parent / "smartqueue-sidecar"


@pytest.fixture(scope="module")
def sidecar_dockerfile() -> list[Instruction]:
    """deploy/sidecar/Dockerfile's instructions."""
    return parse_dockerfile(SIDECAR_DOCKERFILE.read_text())


def final_stage_words(dockerfile: list[Instruction], keyword: str) -> list[list[str]]:
    """The words of every `keyword` instruction of the image's stage."""
    return [i.words() for i in stages(dockerfile)[-1] if i.keyword == keyword]


def test_sidecar_dockerfile_hadolint_reports_nothing() -> None:
    result = run_hadolint(SIDECAR_DOCKERFILE.read_text())
    assert result.returncode == 0, result.stdout + result.stderr


def test_sidecar_dockerfile_pins_base_and_runs_as_non_root(
    sidecar_dockerfile: list[Instruction],
) -> None:
    bases = [stage[0].words()[0] for stage in stages(sidecar_dockerfile)]
    (user,) = final_stage_words(sidecar_dockerfile, "USER")
    assert all(PINNED_BASE.fullmatch(base) for base in bases), bases
    assert user[0].split(":")[0] not in ROOT_USERS
    assert [i.keyword for i in stages(sidecar_dockerfile)[-1]][-3:] == [
        "EXPOSE", "HEALTHCHECK", "CMD",
    ], "nothing runs as root after USER"  # fmt: skip


def test_sidecar_dockerfile_installs_nvidia_extra_under_lock(
    sidecar_dockerfile: list[Instruction],
) -> None:
    installs = [i.words() for i in sidecar_dockerfile if i.keyword == "RUN" and "pip" in i.rest]
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert installs == [["pip", "install", "--constraint", "requirements.lock", ".[nvidia]"]]
    assert extras["optional-dependencies"]["nvidia"] == ["nvidia-ml-py==13.615.71"]
    assert "nvidia-ml-py==13.615.71" in (REPO / "requirements.lock").read_text().splitlines()


def test_sidecar_dockerfile_serves_8090_with_livez_healthcheck(
    sidecar_dockerfile: list[Instruction],
) -> None:
    (healthcheck,) = [i.rest for i in stages(sidecar_dockerfile)[-1] if i.keyword == "HEALTHCHECK"]
    assert LIVEZ_CHECK in healthcheck
    assert final_stage_words(sidecar_dockerfile, "CMD") == [
        ["smartqueue-sidecar", "--host", "0.0.0.0", "--port", "8090"]
    ]
    assert final_stage_words(sidecar_dockerfile, "EXPOSE") == [["8090"]]
    assert env_of(stages(sidecar_dockerfile)[-1])["NVIDIA_DRIVER_CAPABILITIES"] == "utility"


def test_sidecar_dockerfile_copies_only_what_dockerignore_admits(
    sidecar_dockerfile: list[Instruction],
) -> None:
    rules = parse_dockerignore(DOCKERIGNORE.read_text())
    needed = [*copied_sources(sidecar_dockerfile), "src/smartqueue_sidecar/cli.py"]
    assert [path for path in needed if is_excluded(path, rules)] == []


def test_sidecar_compose_service_builds_image_under_gpu_host_profile(
    services: dict[str, Service],
) -> None:
    sidecar = services["sidecar"]
    assert sidecar["profiles"] == ["gpu-host"]
    assert sidecar["build"] == {"context": ".", "dockerfile": "deploy/sidecar/Dockerfile"}
    assert (REPO / sidecar["build"]["dockerfile"]).resolve() == SIDECAR_DOCKERFILE
    assert LIVEZ_CHECK in " ".join(sidecar["healthcheck"]["test"])


def test_sidecar_compose_service_reserves_nvidia_gpus_read_only(
    services: dict[str, Service],
) -> None:
    sidecar = services["sidecar"]
    (device,) = sidecar["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    assert sidecar["read_only"] is True
    assert sidecar["cap_drop"] == ["ALL"]


def unit_settings() -> dict[str, list[str]]:
    """`Section.Key` -> values, in order, of the sidecar's systemd unit."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in SIDECAR_UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(f"{section}.{key}", []).append(value)
    return settings


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Service.DynamicUser", "yes"), ("Service.ProtectSystem", "strict"),
        ("Service.ProtectHome", "yes"), ("Service.NoNewPrivileges", "yes"),
        ("Service.Restart", "on-failure"), ("Service.RestartPreventExitStatus", "2"),
        ("Service.DevicePolicy", "closed"), ("Service.CapabilityBoundingSet", ""),
        ("Install.WantedBy", "multi-user.target"),
    ],
)  # fmt: skip
def test_sidecar_unit_is_hardened(key: str, value: str) -> None:
    assert unit_settings()[key] == [value]


def test_sidecar_unit_allows_gpu_devices_and_serves_8090() -> None:
    settings = unit_settings()
    (command,) = settings["Service.ExecStart"]
    assert settings["Service.DeviceAllow"] == ["char-nvidia* rw", "/dev/kfd rw", "char-drm rw"]
    assert "PrivateDevices" not in " ".join(settings), "it would hide /dev/nvidia*"
    assert command.split()[0].endswith("/smartqueue-sidecar")
    assert "--port 8090" in command


def test_sidecar_unit_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze")
    (command,) = unit_settings()["Service.ExecStart"]
    unit = tmp_path / SIDECAR_UNIT.name  # the same unit, run from this venv's script
    unit.write_text(SIDECAR_UNIT.read_text().replace(command.split()[0], str(SIDECAR_SCRIPT)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
