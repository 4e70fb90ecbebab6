"""The functions' clock: the system's, a fixed one for tests, an offset an emulator may set; and no
code but midstage/clock.py reads the date on its own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from midstage.clock import OFFSET_VARIABLE, fixed, from_environment, offset_in, system_clock

ROOT = Path(__file__).resolve().parents[2]
# What reads the wall clock (time.monotonic measures durations, and is allowed).
READS_THE_DATE = re.compile(r"datetime\.now\(|datetime\.utcnow\(|date\.today\(|time\.time\(|time\.time_ns\(")


def test_given_the_system_clock_when_read_then_it_is_aware_utc_and_close_to_the_host() -> None:
    before = datetime.now(UTC)

    now = system_clock()

    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


def test_given_a_fixed_clock_when_read_twice_then_it_reads_its_moment_in_utc() -> None:
    clock = fixed(datetime(2026, 11, 22, 11, 0, tzinfo=ZoneInfo("Europe/Paris")))

    assert clock() == clock() == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        fixed(datetime(2026, 11, 22))


@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        (None, timedelta(0)),
        ("", timedelta(0)),
        ("86400", timedelta(days=1)),
        ("-3600", timedelta(hours=-1)),
        (" 1.5 ", timedelta(seconds=1.5)),
    ],
)
def test_given_an_offset_in_the_environment_when_read_then_it_is_that_many_seconds(
    raw: str | None, offset: timedelta
) -> None:
    environ = {} if raw is None else {OFFSET_VARIABLE: raw}

    assert offset_in(environ) == offset


@pytest.mark.parametrize("raw", ["1d", "nan", "inf", "-inf", "1e12", "soon"])
def test_given_a_malformed_offset_when_a_function_is_wired_then_its_cold_start_fails_with_the_reason(raw: str) -> None:
    with pytest.raises(ValueError, match=OFFSET_VARIABLE):
        from_environment({OFFSET_VARIABLE: raw})


def test_given_an_offset_that_changes_between_calls_when_read_then_the_clock_follows_it() -> None:
    # Given a function wired with no offset (an emulator's clock that has not moved yet)
    environ: dict[str, str] = {}
    clock = from_environment(environ)
    assert abs(clock() - datetime.now(UTC)) < timedelta(minutes=1)

    # When the emulator moves its clock a day ahead between two invocations
    environ[OFFSET_VARIABLE] = "86400"

    # Then the same warm function reads the moved time
    assert abs(clock() - (datetime.now(UTC) + timedelta(days=1))) < timedelta(minutes=1)


def test_given_the_runtime_code_when_scanned_then_only_the_clock_module_reads_the_date() -> None:
    readers = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("functions", "shared/midstage")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "shared/midstage/clock.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if READS_THE_DATE.search(line)
    ]

    assert readers == []
