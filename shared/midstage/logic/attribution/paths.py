"""Paths: the touches that led to one conversion (or to none), and how they are built.

A touch is a UTM-tagged visit or a message send, open or click, named by its channel. A
conversion takes the person's touches in its lookback window (default 30 days) that came after
their previous conversion; touches left over after a person's last conversion, inside the window
before the analysis ends, form a path that did not convert (a "null"). A conversion with no touch
at all is credited to `direct`, so every model still adds up to every conversion.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

DIRECT = "direct"
DEFAULT_LOOKBACK = timedelta(days=30)
DEFAULT_CONVERSION_EVENT = "Order Completed"
DEFAULT_VALUE_PROPERTY = "revenue"


@dataclass(frozen=True)
class Touch:
    person: str
    at: datetime
    channel: str
    campaign: str | None = None
    kind: str = "visit"  # visit | sent | opened | clicked


@dataclass(frozen=True)
class Conversion:
    person: str
    at: datetime
    value: float = 0.0


@dataclass(frozen=True)
class ConversionSpec:
    """What counts as a conversion: a track event, the property holding its value, the window."""

    event: str = DEFAULT_CONVERSION_EVENT
    value_property: str = DEFAULT_VALUE_PROPERTY
    lookback: timedelta = DEFAULT_LOOKBACK


@dataclass(frozen=True)
class Path:
    """A sequence of channels, with how many times it converted, how often it did not, and the
    value it brought. `days_before` (one per channel) says how long before the conversion each
    touch happened; only time-decay needs it, and only single-conversion paths carry it."""

    channels: tuple[str, ...]
    conversions: float = 0.0
    nulls: float = 0.0
    value: float = 0.0
    days_before: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("a path needs at least one channel")
        if self.days_before is not None and len(self.days_before) != len(self.channels):
            raise ValueError("days_before needs one entry per channel")
        for number in (self.conversions, self.nulls, self.value):
            if not math.isfinite(number) or number < 0:
                raise ValueError("conversions, nulls and value are finite and not negative")


@dataclass
class Credit:
    conversions: float = 0.0
    value: float = 0.0

    def add(self, conversions: float, value: float) -> None:
        self.conversions += conversions
        self.value += value


@dataclass(frozen=True)
class Totals:
    conversions: float
    value: float
    nulls: float = field(default=0.0)


def totals(paths: Iterable[Path]) -> Totals:
    listed = list(paths)
    return Totals(
        conversions=math.fsum(p.conversions for p in listed),
        value=math.fsum(p.value for p in listed),
        nulls=math.fsum(p.nulls for p in listed),
    )


def build_paths(
    touches: Iterable[Touch],
    conversions: Iterable[Conversion],
    *,
    end: datetime,
    lookback: timedelta = DEFAULT_LOOKBACK,
    include_nulls: bool = True,
) -> list[Path]:
    """One path per conversion (with `days_before`), and one null path per person whose last
    touches did not convert. Touches after `end` are ignored; so are conversions after it."""
    by_person: dict[str, list[Touch]] = {}
    for touch in touches:
        if touch.at <= end:
            by_person.setdefault(touch.person, []).append(touch)
    wins: dict[str, list[Conversion]] = {}
    for conversion in conversions:
        if conversion.at <= end:
            wins.setdefault(conversion.person, []).append(conversion)

    paths: list[Path] = []
    for person in sorted(set(by_person) | set(wins)):
        own = sorted(by_person.get(person, []), key=lambda t: (t.at, t.channel))
        previous: datetime | None = None
        for conversion in sorted(wins.get(person, []), key=lambda c: c.at):
            window = [t for t in _between(own, previous, conversion.at) if t.at >= conversion.at - lookback]
            if window:
                channels = tuple(t.channel for t in window)
                days = tuple((conversion.at - t.at).total_seconds() / 86400 for t in window)
            else:
                channels, days = (DIRECT,), (0.0,)
            paths.append(Path(channels, conversions=1.0, value=conversion.value, days_before=days))
            previous = conversion.at
        if include_nulls:
            rest = [t for t in _between(own, previous, end) if t.at >= end - lookback]
            if rest:
                paths.append(Path(tuple(t.channel for t in rest), nulls=1.0))
    return paths


def _between(touches: Sequence[Touch], after: datetime | None, until: datetime) -> list[Touch]:
    return [t for t in touches if (after is None or t.at > after) and t.at <= until]


def aggregate(paths: Iterable[Path]) -> list[Path]:
    """Identical channel sequences summed into one path (the form the analyze API takes).
    Time-decay needs the unaggregated paths: their `days_before` differ."""
    summed: dict[tuple[str, ...], list[float]] = {}
    for path in paths:
        entry = summed.setdefault(path.channels, [0.0, 0.0, 0.0])
        entry[0] += path.conversions
        entry[1] += path.nulls
        entry[2] += path.value
    return [Path(channels, c, n, v) for channels, (c, n, v) in sorted(summed.items())]
