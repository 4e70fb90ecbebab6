"""Cold-start import time of each function's handler, as the Lambda runtime pays it.

For every functions/<name>/handler.py a fresh interpreter puts the function's folder on sys.path
and imports `handler`, which is what the runtime does before the first invocation. The wall time
of that process, minus the wall time of a bare `python -c pass`, is the handler's import cost;
the time measured inside the process around the import alone is printed beside it. Runs are
interleaved in rounds so that load from anything else on the machine falls on all alike.

The child gets only the variables Lambda itself sets (region, function name, task root): a
handler that needs the application's own configuration at import time fails here, and that is
reported as a finding. Bytecode is not written (PYTHONDONTWRITEBYTECODE), so the function and the
`midstage` library are compiled from source on every run, as from a layer shipped without .pyc;
third-party packages load from the bytecode pip compiled at install. The last column is the same
import with bytecode for everything (a temporary `-X pycache_prefix`, outside the repository),
which is what a layer built with `compileall` would give.

`python -m bench.bench_import_time --against REF [function ...]` compares instead: the handlers and
the `midstage` library as they are at the git commit REF against the working tree, in interleaved
runs, so that a machine busy with other work slows both alike.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7
TOP_PACKAGES = 5
IMPORT_HANDLER = (
    "import sys, time; sys.path.insert(0, sys.argv[1]); started = time.perf_counter(); import handler; "
    "print(time.perf_counter() - started)"
)
# The same import with every third-party package the layer does not ship made unimportable.
IMPORT_WITH_LAYER_ONLY = (
    "import sys\n"
    "blocked = set(sys.argv[2].split(','))\n"
    "class NotInLayer:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.partition('.')[0] in blocked:\n"
    "            raise ModuleNotFoundError(f'No module named {name!r} (not in the layer)', name=name)\n"
    "sys.meta_path.insert(0, NotInLayer())\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import handler\n"
)
# The Lambda Python runtime provides boto3 (and what it needs); the layer adds the rest.
RUNTIME_PROVIDED = ("boto3",)


def lambda_environment(function: str) -> dict[str, str]:
    """What the runtime provides, and nothing of the application's configuration."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": f"midstage-{function}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / function),
    }


def timed(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done


def _requirement(line: str) -> tuple[str, set[str], str]:
    """(normalised name, extras asked for, marker) of a requirement line."""
    spec, _, marker = line.partition(";")
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", spec)
    if match is None:
        return "", set(), marker
    extras = {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), extras, marker


def layer_closure() -> set[str]:
    """Distributions a deployed function can import: shared/requirements.txt, the runtime's boto3,
    and everything they require (optional extras only when asked for)."""
    wanted = [_requirement(line) for line in (ROOT / "shared" / "requirements.txt").read_text().splitlines()]
    wanted = [w for w in wanted if w[0]] + [(name, set(), "") for name in RUNTIME_PROVIDED]
    closure: set[str] = set()
    while wanted:
        name, extras, _ = wanted.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            dependency, dependency_extras, marker = _requirement(line)
            needed_extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if needed_extra is None or needed_extra.group(1) in extras:
                wanted.append((dependency, dependency_extras, marker))
    return closure


def modules_not_in_layer() -> set[str]:
    """Top-level third-party modules installed here that the deployed layer would not have."""
    closure = layer_closure()
    blocked = set()
    for module, distributions in metadata.packages_distributions().items():
        if module == "midstage":
            continue  # the layer copies the package itself
        if not any(re.sub(r"[-_.]+", "-", d).lower() in closure for d in distributions) or module == "infra":
            blocked.add(module)
    return blocked


def import_profile(function: str) -> tuple[str, str]:
    """From one `-X importtime` run: top-level packages by their own (self) import time, and the
    handler's direct imports by cumulative time (the first to import a shared dependency pays it)."""
    folder = str(ROOT / "functions" / function)
    _, done = timed(["-X", "importtime", "-c", IMPORT_HANDLER, folder], lambda_environment(function))
    by_package: dict[str, int] = defaultdict(int)
    direct: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2 or "self [us]" in line:
            continue
        self_us, cumulative_us, raw_name = line.removeprefix("import time:").split("|")
        name = raw_name.strip()
        by_package[name.split(".")[0]] += int(self_us)
        if (len(raw_name) - len(raw_name.lstrip()) - 1) // 2 == 1:
            direct[name] = int(cumulative_us)

    def top(figures: dict[str, int]) -> str:
        ranked = sorted(figures.items(), key=lambda item: item[1], reverse=True)[:TOP_PACKAGES]
        return ", ".join(f"{name} {us / 1000:.0f}" for name, us in ranked)

    return top(by_package), top(direct)


def main() -> None:
    functions = sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))
    print(f"   Python {sys.version.split()[0]} (Lambda runs python3.12); median of {RUNS} interleaved runs, in ms")
    walls: dict[str, list[float]] = defaultdict(list)
    inside: dict[str, list[float]] = defaultdict(list)
    compiled: dict[str, list[float]] = defaultdict(list)
    failures: dict[str, str] = {}
    bare_env = lambda_environment("bare")
    with tempfile.TemporaryDirectory(prefix="midstage-pycache-") as pycache:
        # The same import with bytecode for everything, kept outside the repository.
        with_pyc = ["-X", f"pycache_prefix={pycache}", "-c", IMPORT_HANDLER]
        for function in functions:  # the first run compiles into the prefix; it is not timed
            env = {k: v for k, v in lambda_environment(function).items() if k != "PYTHONDONTWRITEBYTECODE"}
            timed([*with_pyc, str(ROOT / "functions" / function)], env)
        timed(["-c", "pass"], bare_env)  # let the OS cache the interpreter before the first timed run
        for _ in range(RUNS):
            walls["bare"].append(timed(["-c", "pass"], bare_env)[0])
            for function in functions:
                folder = str(ROOT / "functions" / function)
                wall, done = timed(["-c", IMPORT_HANDLER, folder], lambda_environment(function))
                if done.returncode != 0:
                    failures[function] = (done.stderr.strip().splitlines() or ["no output"])[-1]
                    continue
                walls[function].append(wall)
                inside[function].append(float(done.stdout.strip()))
                env = {k: v for k, v in lambda_environment(function).items() if k != "PYTHONDONTWRITEBYTECODE"}
                _, done = timed([*with_pyc, folder], env)
                compiled[function].append(float(done.stdout.strip()))
    bare = statistics.median(walls["bare"])
    spread = f"({min(walls['bare']) * 1000:.0f}-{max(walls['bare']) * 1000:.0f})"
    print(f"   {'bare `python -c pass`':<28} wall {bare * 1000:6.0f}  {spread}")
    for function in functions:
        if function in failures:
            print(f"   {function:<28} FAILS to import without application settings: {failures[function]}")
            continue
        wall = statistics.median(walls[function])
        print(
            f"   {function:<28} wall {wall * 1000:6.0f}  minus bare {(wall - bare) * 1000:6.0f}"
            f"   import alone {statistics.median(inside[function]) * 1000:6.0f}"
            f"  ({min(inside[function]) * 1000:.0f}-{max(inside[function]) * 1000:.0f})"
            f"   with .pyc for midstage too {statistics.median(compiled[function]) * 1000:6.0f}"
        )
    print("   one -X importtime run each, in ms: packages by self time; the handler's direct imports, cumulative")
    for function in functions:
        if function not in failures:
            packages, direct = import_profile(function)
            print(f"     {function:<26} self:   {packages}")
            print(f"     {'':<26} direct: {direct}")
    if not failures:
        print("   no handler needs application settings at import time")
    blocked = sorted(modules_not_in_layer())
    print(
        "   with only what the deployed layer holds (shared/requirements.txt and its dependencies, plus the"
        " runtime's boto3):"
    )
    for function in functions:
        folder = str(ROOT / "functions" / function)
        _, done = timed(["-c", IMPORT_WITH_LAYER_ONLY, folder, ",".join(blocked)], lambda_environment(function))
        if done.returncode == 0:
            print(f"     {function:<26} imports")
        else:
            print(f"     {function:<26} FAILS: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")


def import_seconds(folder: Path, function: str, library: Path | None = None) -> float:
    """One cold import of the handler in `folder`, timed inside the process; with `library`, the
    `midstage` package is read from there (ahead of the installed, editable one)."""
    env = lambda_environment(function)
    if library is not None:
        env["PYTHONPATH"] = str(library)
    _, done = timed(["-c", IMPORT_HANDLER, str(folder)], env)
    if done.returncode != 0:
        raise RuntimeError(f"{function} at {folder}: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return float(done.stdout.strip())


def compare(ref: str, functions: list[str], runs: int = RUNS) -> None:
    """Cold import of each function at the commit `ref` and in the working tree, interleaved."""
    functions = functions or sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "functions", "shared"], capture_output=True, check=True
    ).stdout
    print(f"   cold import at {ref} and in the working tree: median of {runs} interleaved runs, in ms")
    with tempfile.TemporaryDirectory(prefix="midstage-baseline-") as baseline:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(baseline, filter="data")
        then: dict[str, list[float]] = defaultdict(list)
        now: dict[str, list[float]] = defaultdict(list)
        for _ in range(runs):
            for function in functions:
                old = Path(baseline) / "functions" / function
                if old.exists():
                    then[function].append(import_seconds(old, function, Path(baseline) / "shared"))
                now[function].append(import_seconds(ROOT / "functions" / function, function))
    for function in functions:
        after = statistics.median(now[function]) * 1000
        if not then[function]:
            print(f"   {function:<28} {'(new)':>8}  now {after:6.0f}")
            continue
        before = statistics.median(then[function]) * 1000
        print(f"   {function:<28} then {before:6.0f}  now {after:6.0f}  change {after - before:+6.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", metavar="REF", help="compare with the handlers at this git commit")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("functions", nargs="*", help="only these functions (default: all)")
    arguments = parser.parse_args()
    if arguments.against:
        compare(arguments.against, arguments.functions, arguments.runs)
    else:
        main()
