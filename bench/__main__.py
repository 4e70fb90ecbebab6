"""Run every benchmark (or the ones named): `python -m bench [name ...]`."""

import importlib
import pkgutil
import sys
import time

import bench


def main(argv: list[str]) -> None:
    wanted = set(argv)
    for module in sorted(m.name for m in pkgutil.iter_modules(bench.__path__)):
        if not module.startswith("bench_"):
            continue
        if wanted and module.removeprefix("bench_") not in wanted and module not in wanted:
            continue
        started = time.perf_counter()
        print(f"\n== {module}")
        importlib.import_module(f"bench.{module}").main()
        print(f"   ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
