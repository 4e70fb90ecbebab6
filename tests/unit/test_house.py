"""The house rules of CONTRIBUTING.md, checked on the code as it is: which room may import what,
that handlers stay thin and modules stay readable, and that a port is declared once
(tests/unit/test_logic_purity.py holds `logic/` to no I/O, clock or hidden randomness).

These read the source (imports and class definitions through `ast`); they run nothing."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "shared" / "midstage"
FUNCTIONS = ROOT / "functions"

HANDLER_MAX_LINES = 120
MODULE_MAX_LINES = 600
# Modules allowed past MODULE_MAX_LINES, each with the reason it stays whole.
LONG_MODULES: dict[str, str] = {}


def _modules(tree: Path) -> Iterator[Path]:
    yield from sorted(p for p in tree.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _room(path: Path) -> str:
    """The first folder under shared/midstage (`logic`, `services`, ...), or the module's name."""
    return path.relative_to(LIBRARY).parts[0].removesuffix(".py")


def _reaches(module: str, names: frozenset[str]) -> str | None:
    for name in names:
        if module == name or module.startswith(name + "."):
            return name
    return None


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_given_the_code_when_scanned_then_only_adapters_touch_boto3() -> None:
    # Given every module of the library and every handler
    offenders = [
        f"{_where(path)} imports {module}"
        for tree in (LIBRARY, FUNCTIONS)
        for path in _modules(tree)
        if not (tree == LIBRARY and _room(path) == "adapters")
        for module in _imports(path)
        if _reaches(module, frozenset({"boto3", "botocore"}))
    ]
    # Then none outside adapters/ reaches boto3 or botocore
    assert offenders == []


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [
        ("logic", frozenset({"midstage.services", "midstage.adapters", "midstage.observability"})),
        ("models", frozenset({"midstage.services", "midstage.adapters", "midstage.logic.analytics"})),
        ("adapters", frozenset({"midstage.services"})),
        ("services", frozenset({"midstage.adapters"})),
    ],
)
def test_given_a_room_when_its_imports_are_read_then_nothing_points_back_up(
    room: str, forbidden: frozenset[str]
) -> None:
    # Given the modules of one room
    modules = [path for path in _modules(LIBRARY) if _room(path) == room]
    assert modules, f"no room {room}"
    # When their imports are read
    offenders = [
        f"{_where(path)} imports {module}"
        for path in modules
        for module in _imports(path)
        if _reaches(module, forbidden) or module == "functions" or module.startswith(("functions.", "infra"))
    ]
    # Then none reaches a room above it, a function or the development tooling
    assert offenders == []


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_given_the_handlers_when_measured_then_each_stays_thin() -> None:
    # Given every function's handler
    handlers = sorted(FUNCTIONS.glob("*/handler.py"))
    assert handlers
    # Then each is at most HANDLER_MAX_LINES lines: parsing, one call, mapping the answer
    assert {_where(h): _lines(h) for h in handlers if _lines(h) > HANDLER_MAX_LINES} == {}


def test_given_the_library_when_measured_then_no_module_is_past_the_limit_unless_listed_with_a_reason() -> None:
    # Given every module of the library
    long = {_where(p): _lines(p) for p in _modules(LIBRARY) if _lines(p) > MODULE_MAX_LINES}
    # Then only the listed ones are long, and every listed one still is (the list does not go stale)
    assert sorted(set(long) - set(LONG_MODULES)) == []
    assert sorted(set(LONG_MODULES) - set(long)) == []


def test_given_the_library_when_its_protocols_are_read_then_each_port_is_declared_once() -> None:
    # Given every Protocol class in the library
    declared: dict[str, list[str]] = defaultdict(list)
    for path in _modules(LIBRARY):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(base, ast.Name) and base.id == "Protocol")
                or (isinstance(base, ast.Attribute) and base.attr == "Protocol")
                for base in node.bases
            ):
                declared[node.name].append(_where(path))
    # Then no port name is declared in two places
    assert {name: places for name, places in declared.items() if len(places) > 1} == {}


def test_given_the_library_when_its_errors_are_read_then_every_domain_error_is_declared_in_errors_py() -> None:
    # Given the errors declared in errors.py (each with its HTTP status and code)
    errors_py = LIBRARY / "errors.py"
    declared = {
        node.name for node in ast.parse(errors_py.read_text(encoding="utf-8")).body if isinstance(node, ast.ClassDef)
    }
    assert {"MidstageError", "InvalidInput", "ConditionError"} <= declared
    # When every other module's classes are read
    offenders = [
        f"{_where(path)}: {node.name}"
        for path in _modules(LIBRARY)
        if path != errors_py
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
        and any(isinstance(base, ast.Name) and base.id in declared for base in node.bases)
    ]
    # Then none derives a new domain error of its own
    assert offenders == []
