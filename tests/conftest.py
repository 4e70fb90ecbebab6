"""Every tier: with MIDSTAGE_TEST_CLOCK_SHIFT set (e.g. `400d`, `-400d`, `36h`), the whole session
runs with the process clock moved that far (time-machine, still ticking), so a test that passes
only until some date fails today instead of on that date. `make test-shifted` runs the unit and
integration tiers 400 days ahead."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

import pytest

SHIFT_VARIABLE = "MIDSTAGE_TEST_CLOCK_SHIFT"
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_SHIFT = re.compile(r"([+-]?\d{1,6})([dhms])")
_traveller = pytest.StashKey[object]()
_shift = pytest.StashKey[timedelta]()


def parse_shift(text: str) -> timedelta:
    """`400d`, `-400d`, `+36h`, `90m`, `30s`: a whole number and one unit."""
    match = _SHIFT.fullmatch(text.strip())
    if match is None:
        raise pytest.UsageError(f"{SHIFT_VARIABLE} must be like 400d, -400d, 36h, 90m or 30s, got {text!r}")
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(amount)})


def pytest_configure(config: pytest.Config) -> None:
    raw = os.environ.get(SHIFT_VARIABLE, "").strip()
    if not raw:
        return
    import time_machine

    shift = parse_shift(raw)
    traveller = time_machine.travel(datetime.now(UTC) + shift, tick=True)
    traveller.start()
    config.stash[_traveller] = traveller
    config.stash[_shift] = shift


def pytest_unconfigure(config: pytest.Config) -> None:
    traveller = config.stash.get(_traveller, None)
    if traveller is not None:
        traveller.stop()  # type: ignore[attr-defined]


def _describe(config: pytest.Config) -> str | None:
    shift = config.stash.get(_shift, None)
    if shift is None:
        return None
    return f"clock shifted by {shift} ({SHIFT_VARIABLE}): the tests run as if it were {datetime.now(UTC):%Y-%m-%d} UTC"


def pytest_report_header(config: pytest.Config) -> str | None:
    return _describe(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    # Also under -q, which hides the header: a shifted run says so where its result is read.
    described = _describe(config)
    if described is not None:
        terminalreporter.write_line(described)
