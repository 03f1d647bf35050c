"""The simulator is a product beside the service: the two packages meet only where allowed.

The simulator reads the fleet file's types (and the one-line formatter of their validation
errors) from `smartqueue.config` and nothing else of the service; the service reaches the
simulator only through the lazy `smartqueue sim` aliases.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SIMULATOR = SRC / "smartqueue_sim"
SERVICE = SRC / "smartqueue"
# The fleet file's types, and its one-line validation messages.
FLEET_TYPES = {
    "Engine", "GpuConfig", "FleetConfig", "load_fleet", "FleetError", "describe_validation_error",
}  # fmt: skip


def imports_of(path: Path) -> list[tuple[str, set[str]]]:
    """(module, names taken from it) for every import statement in a source file."""
    found: list[tuple[str, set[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, set()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, {alias.name for alias in node.names}))
    return found


def is_fleet_type_import(module: str, names: set[str]) -> bool:
    """Whether an import takes only fleet types from `smartqueue.config`."""
    return module == "smartqueue.config" and names <= FLEET_TYPES


def package_imports(package: Path, prefix: str) -> dict[str, list[tuple[str, set[str]]]]:
    """Imports of modules under `prefix` (the package itself or its submodules), by file."""
    wanted = {
        str(path.relative_to(SRC)): [
            (module, names)
            for module, names in imports_of(path)
            if module == prefix or module.startswith(f"{prefix}.")
        ]
        for path in sorted(package.rglob("*.py"))
    }
    return {path: found for path, found in wanted.items() if found}


def test_simulator_imports_from_the_service_only_the_fleet_types() -> None:
    used = package_imports(SIMULATOR, "smartqueue")
    outside = {
        path: found
        for path, found in used.items()
        if not all(is_fleet_type_import(module, names) for module, names in found)
    }
    assert used, "the simulator reads its fleet files through smartqueue.config"
    assert outside == {}


def test_service_imports_the_simulator_only_in_its_cli_aliases() -> None:
    assert set(package_imports(SERVICE, "smartqueue_sim")) == {"smartqueue/cli.py"}


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("from smartqueue.config import Engine, load_fleet", True),
        ("from smartqueue.config import Settings", False),
        ("from smartqueue.store import Store", False),
        ("import smartqueue.fleet", False),
    ],
)
def test_boundary_check_tells_fleet_types_from_other_service_code(
    source: str, allowed: bool, tmp_path: Path
) -> None:
    module = tmp_path / "module.py"
    module.write_text(source, encoding="utf-8")
    ((name, names),) = imports_of(module)
    assert is_fleet_type_import(name, names) is allowed
