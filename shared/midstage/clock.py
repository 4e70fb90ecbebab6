"""The time the functions go by: one clock per function, built with the rest of its wiring.

Code below the handlers never reads the time on its own: `logic/` takes `now` as an argument,
services that stamp what they write take a `Clock`, and each handler's cached wiring holds the
clock it hands them, so a test gives a function a fixed "now" by giving its wiring a fixed clock.

On AWS the clock is the system's. An emulator that runs the functions on a time of its own (a
local cloud whose clock tests advance) can move it with `MIDSTAGE_CLOCK_OFFSET_SECONDS` in the
function's environment; the offset is read at every call, because such a clock moves between
invocations of a warm function.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

__all__ = ["OFFSET_VARIABLE", "Clock", "fixed", "from_environment", "offset_in", "system_clock"]

Clock = Callable[[], datetime]

OFFSET_VARIABLE = "MIDSTAGE_CLOCK_OFFSET_SECONDS"
# Past a century either way the offset is a typo, and datetime arithmetic nears its limits.
_MAX_OFFSET_S = 100 * 366 * 86_400


def system_clock() -> datetime:
    """The host's time, in UTC."""
    return datetime.now(UTC)


def fixed(moment: datetime) -> Clock:
    """A clock that always reads `moment` (aware)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a fixed clock needs a timezone-aware moment, got {moment!r}")
    at = moment.astimezone(UTC)
    return lambda: at


def offset_in(environ: Mapping[str, str]) -> timedelta:
    """The offset `OFFSET_VARIABLE` asks for (seconds, may be negative or fractional); none when unset."""
    raw = environ.get(OFFSET_VARIABLE, "").strip()
    if not raw:
        return timedelta(0)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or abs(seconds) > _MAX_OFFSET_S:
        raise ValueError(f"{OFFSET_VARIABLE} must be a number of seconds within a century, got {raw[:40]!r}")
    return timedelta(seconds=seconds)


def from_environment(environ: Mapping[str, str] | None = None) -> Clock:
    """The clock a function's wiring hands its code: the system clock, moved by the offset in
    `environ` (the process environment by default) as it reads at each call. A malformed offset
    fails here, at the cold start, rather than at every call."""
    source = os.environ if environ is None else environ
    offset_in(source)

    def now() -> datetime:
        return system_clock() + offset_in(source)

    return now
