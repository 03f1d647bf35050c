"""The architecture as import rules, read from the source with `ast` (nothing is imported).

Pure modules make decisions from values: they import no I/O library, not even through another
smartqueue module. Only the store talks to Redis. To add a pure module, name it in PURE_MODULES.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = "smartqueue"
SOURCE = REPO / "src"
PURE_MODULES = frozenset(
    {
        "breaker",
        "scoring",
        "policy",
        "openai_format",
        "sse",
        "models",
        "queue",
        "batches",
        "owners",
        "planner",
    }
)  # `queue` is on its way; a name without a module yet is skipped
IO_LIBRARIES = frozenset({"redis", "httpx", "fastapi", "starlette", "asyncio"})
STORE = f"{PACKAGE}.store"


def module_name(path: Path) -> str:
    """`smartqueue.api.errors` for src/smartqueue/api/errors.py (a package is its __init__)."""
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted((SOURCE / PACKAGE).rglob("*.py"))}


def is_store(module: str) -> bool:
    """The store module, or any module of the store package."""
    return module == STORE or module.startswith(STORE + ".")


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The module a `from ... import` reads from, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + is_package]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every module `module` imports directly (`from a import b` counts as a and a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return frozenset(found)


def reachable_imports(module: str) -> frozenset[str]:
    """What `module` imports, and what the smartqueue modules it imports import, and so on."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        for imported in imports_of(pending.pop()) - seen:
            seen.add(imported)
            if imported in MODULES:
                pending.append(imported)
    return frozenset(seen)


def io_libraries(imports: frozenset[str]) -> set[str]:
    """The I/O libraries among `imports` (by top-level name)."""
    return {name.split(".")[0] for name in imports} & IO_LIBRARIES


PRESENT_PURE = sorted(
    f"{PACKAGE}.{name}" for name in PURE_MODULES if f"{PACKAGE}.{name}" in MODULES
)


def test_boundaries_see_the_store_and_the_pure_modules() -> None:
    assert any(is_store(name) for name in MODULES)
    assert {"smartqueue.breaker", "smartqueue.policy", "smartqueue.models"} <= set(PRESENT_PURE)


def test_reachable_imports_follow_smartqueue_modules_to_redis() -> None:
    users = [
        name for name in MODULES if not is_store(name) and any(map(is_store, imports_of(name)))
    ]

    assert users, "some module uses the store"
    assert all("redis" in io_libraries(reachable_imports(name)) for name in users)


@pytest.mark.parametrize("module", PRESENT_PURE)
def test_pure_module_imports_no_io_library_even_indirectly(module: str) -> None:
    assert io_libraries(reachable_imports(module)) == set()


@pytest.mark.parametrize("module", sorted(name for name in MODULES if not is_store(name)))
def test_only_the_store_imports_redis(module: str) -> None:
    assert "redis" not in io_libraries(imports_of(module))


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("smartqueue.store", True),
        ("smartqueue.store.jobs", True),
        ("smartqueue.storefront", False),
        ("smartqueue.api.store", False),
    ],
)
def test_is_store_covers_the_module_and_the_package(module: str, expected: bool) -> None:
    assert is_store(module) is expected
