"""logic/ is pure as written: no I/O, no clock reads, no hidden randomness, no sleeping. This
walks every module under shared/midstage/logic and refuses the calls and imports that would
break that; a use case that needs them belongs in services/, with the clock or the id factory
passed in."""

from __future__ import annotations

import ast
from pathlib import Path

import midstage.logic

LOGIC = Path(midstage.logic.__file__).parent

# module.attribute calls that read the world or change it
FORBIDDEN_CALLS = {
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("time", "sleep"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("uuid", "uuid1"),
    ("uuid", "uuid4"),
    ("os", "getenv"),
    ("os", "urandom"),
    ("secrets", "token_hex"),
    ("secrets", "token_bytes"),
}
# random's module-level functions draw from a hidden global generator; random.Random(seed) is fine
RANDOM_FUNCTIONS = {"random", "uniform", "randint", "choice", "choices", "shuffle", "sample", "gauss", "randrange"}
# ... and modules that exist to reach outside: AWS, the network, processes, scratch files
FORBIDDEN_IMPORTS = {
    "boto3",
    "botocore",
    "requests",
    "urllib.request",
    "http.client",
    "socket",
    "subprocess",
    "tempfile",
}


def _forbidden(module: str) -> bool:
    return module in FORBIDDEN_IMPORTS or module.split(".")[0] in FORBIDDEN_IMPORTS


def offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            call = (name, node.func.attr)
            if call in FORBIDDEN_CALLS or (name == "random" and node.func.attr in RANDOM_FUNCTIONS):
                found.append(f"{name}.{node.func.attr}")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and _forbidden(node.module):
            found.append(f"from {node.module}")
    return found


def test_no_module_in_logic_reads_the_clock_draws_hidden_randomness_sleeps_or_does_io() -> None:
    # Given every module under logic/
    modules = sorted(LOGIC.rglob("*.py"))
    assert len(modules) > 20
    # When each is read for calls and imports that reach outside
    found = {str(m.relative_to(LOGIC)): offences(m) for m in modules}
    # Then none has any
    assert {m: f for m, f in found.items() if f} == {}


def test_the_guard_catches_what_it_is_meant_to(tmp_path: Path) -> None:
    # Given a module that reads the clock, sleeps, draws from the global generator and imports boto3
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import time, random, boto3\nfrom datetime import datetime\n"
        "def f():\n    time.sleep(1)\n    random.uniform(0, 1)\n    return datetime.now()\n"
    )
    # Then each is named
    assert sorted(offences(bad)) == ["datetime.now", "import boto3", "random.uniform", "time.sleep"]
    # And a seeded generator is not an offence
    good = tmp_path / "good.py"
    good.write_text("import random\ndef f(seed):\n    return random.Random(seed).random()\n")
    assert offences(good) == []
