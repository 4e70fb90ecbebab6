"""The console's page weight and its time to interactive in headless Chromium, locally.

1. Page weight: every file the page loads (functions/console/static), as served (API Gateway does
   not compress) and gzipped for comparison, and the total.
2. Time to interactive: a fresh browser profile opens `/console` on a local cloud and the page
   marks `console:interactive` once its first view (sign-in, the key's field focused) is ready;
   the figure is that mark's time from navigation start (performance.mark, read in the page).
   Cold: a new profile each time (no cache). Warm: a reload of the same tab (each file
   revalidated, answered 304). Then signed in: from clicking "Sign in" to the overview's
   campaigns shown (three API calls: the key, the weekly review, the campaigns).

Needs Debian's chromium (MIDSTAGE_CHROMIUM) and the playwright package; without them only the
weight is printed. Median of repeats, spread beside it.
"""

from __future__ import annotations

import gzip
import statistics
import time
from pathlib import Path

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.demo import bootstrap
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

STATIC = Path(__file__).resolve().parents[1] / "functions" / "console" / "static"
REPEATS = 9


def weight() -> None:
    total = zipped = 0
    print(f"   {'file':<14} {'bytes':>8} {'gzip -9':>8}")
    for path in sorted(STATIC.iterdir()):
        body = path.read_bytes()
        packed = len(gzip.compress(body, 9))
        total, zipped = total + len(body), zipped + packed
        print(f"   {path.name:<14} {len(body):>8,} {packed:>8,}")
    print(f"   {'total':<14} {total:>8,} {zipped:>8,}   ({len(list(STATIC.iterdir()))} requests)")


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} ms  ({min(values):.1f}-{max(values):.1f})"


def interactive() -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("   time to interactive: skipped (the playwright package is not installed)")
        return
    if not CHROMIUM.exists():
        print(f"   time to interactive: skipped (no Chromium at {CHROMIUM})")
        return
    mark = "() => performance.getEntriesByName('console:interactive')[0].startTime"
    with LocalCloud(manual_clock=True) as cloud, sync_playwright() as playwright:
        _, admin_key = bootstrap(cloud, echo=False)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        url = f"{cloud.api_url}/console"
        cold, warm, signed_in = [], [], []
        for _ in range(REPEATS + 1):  # the first round warms the functions' containers
            context = browser.new_context()
            page = context.new_page()
            page.goto(url)
            page.wait_for_function("() => performance.getEntriesByName('console:interactive').length")
            cold.append(page.evaluate(mark))
            page.reload()
            page.wait_for_function("() => performance.getEntriesByName('console:interactive').length")
            warm.append(page.evaluate(mark))
            page.get_by_label("Admin API key").fill(admin_key)
            started = time.perf_counter()
            page.get_by_role("button", name="Sign in").click()
            page.locator("#campaigns-title").wait_for()
            signed_in.append((time.perf_counter() - started) * 1000)
            context.close()
        browser.close()
    print(f"   time to interactive, cold   {_spread(cold[1:])}")
    print(f"   time to interactive, warm   {_spread(warm[1:])}")
    print(f"   sign-in to overview shown   {_spread(signed_in[1:])}")


def main() -> None:
    weight()
    interactive()


if __name__ == "__main__":
    main()
