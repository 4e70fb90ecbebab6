"""EventBridge rule and EventBridge Scheduler schedule expressions: rate(), cron() and at().

``parse_schedule`` turns an expression into a ``Schedule`` whose ``next_after`` gives the first
fire time strictly after a moment, so the local cloud can drive scheduled targets without
polling minute by minute.

Semantics (EventBridge user guide "Creating a rule that runs on a schedule" and the
EventBridge Scheduler user guide "Schedule types"):

* ``rate(value unit)``: units minute(s), hour(s), day(s); a value of 1 takes the singular unit
  and larger values the plural. A rate is a fixed duration ("days" are 24 hours even across a
  daylight-saving change), counted from ``start`` (the StartDate, or the creation time) with the
  first invocation at ``start`` itself. Without ``start`` the periods are aligned on the Unix
  epoch.
* ``cron(minutes hours day-of-month month day-of-week year)``: AWS's six-field cron, evaluated
  on the wall clock of ``timezone``. Exactly one of day-of-month and day-of-week is ``?``.
  Day-of-week counts 1=SUN to 7=SAT. Ranges may wrap (``20-2`` in hours, ``FRI-MON``); ``L``,
  ``W``, ``LW``, ``<weekday>L`` and ``<weekday>#<n>`` must each be the whole field. Fire times
  before ``start`` are skipped, as Scheduler does for a StartDate.
* ``at(yyyy-mm-ddThh:mm:ss)``: a one-time schedule on the wall clock of ``timezone``.

Daylight-saving time, as EventBridge Scheduler documents it: when clocks spring forward a cron
time that does not exist that day is skipped (no late invocation), and when clocks fall back a
repeated wall-clock time fires only once. The guide does not say which of the two instants
fires; this module uses the first. For ``at()`` the guide says nothing about a non-existent
time; this module reads it with the offset in force before the change, so
``at(2024-03-10T02:30:00)`` in America/New_York fires at 03:30 EDT.
"""

from __future__ import annotations

import calendar
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CronSchedule",
    "InvalidScheduleExpression",
    "OneTimeSchedule",
    "RateSchedule",
    "Schedule",
    "parse_schedule",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_RATE_UNITS: Final = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_EXPRESSION: Final = re.compile(r"(rate|cron|at)\((.*)\)", re.DOTALL)
_AT: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")
_DIGITS: Final = re.compile(r"[0-9]+")

# Selects the days of one (year, month) on which a cron schedule fires.
_DaySelector = Callable[[int, int], list[int]]


class InvalidScheduleExpression(ValueError):
    """A schedule expression (or its time zone) that AWS would reject."""


class Schedule(ABC):
    """When a schedule fires; every instant it returns is an aware UTC datetime."""

    expression: str

    @abstractmethod
    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after ``moment`` (aware), or None if it never fires again."""


def parse_schedule(expression: str, timezone: str = "UTC", start: datetime | None = None) -> Schedule:
    """Parse a rate(), cron() or at() expression evaluated in the IANA ``timezone``.

    ``start`` (aware) is the schedule's StartDate or creation time: a rate counts its periods
    from it and a cron schedule does not fire before it; at() ignores it.
    """
    zone = _zone(timezone)
    start_utc = None if start is None else _as_utc(start, "start")
    match = _EXPRESSION.fullmatch(expression)
    if match is None:
        raise InvalidScheduleExpression(
            f"{expression!r} is not a schedule expression; expected rate(...), cron(...) or at(...)"
        )
    kind, body = match.groups()
    if kind == "rate":
        return RateSchedule(expression, _parse_rate(body), start_utc)
    if kind == "cron":
        return _parse_cron(expression, body, zone, start_utc)
    return OneTimeSchedule(expression, _parse_at(body, zone))


@dataclass(frozen=True)
class RateSchedule(Schedule):
    expression: str
    period: timedelta
    start: datetime | None = None

    def next_after(self, moment: datetime) -> datetime | None:
        moment = _as_utc(moment, "moment")
        if self.start is not None and moment < self.start:
            return self.start
        origin = _EPOCH if self.start is None else self.start
        elapsed_periods = (moment - origin) // self.period
        return origin + (elapsed_periods + 1) * self.period


@dataclass(frozen=True)
class OneTimeSchedule(Schedule):
    expression: str
    fires_at: datetime

    def next_after(self, moment: datetime) -> datetime | None:
        return self.fires_at if self.fires_at > _as_utc(moment, "moment") else None


@dataclass(frozen=True)
class CronSchedule(Schedule):
    expression: str
    zone: ZoneInfo
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    days: _DaySelector = field(compare=False, repr=False)
    start: datetime | None = None

    def next_after(self, moment: datetime) -> datetime | None:
        moment = _as_utc(moment, "moment")
        scan_from = self.start if self.start is not None and self.start > moment else moment
        floor = scan_from.astimezone(self.zone).replace(tzinfo=None, second=0, microsecond=0)
        for wall in self._wall_times_from(floor):
            instant = _instant_of(wall, self.zone)
            # A wall time repeated when clocks fall back maps to its first instant, which can lie
            # before ``moment``: that repetition is not a second fire time, so keep scanning.
            if instant is not None and instant > moment and (self.start is None or instant >= self.start):
                return instant
        return None

    def _wall_times_from(self, floor: datetime) -> Iterator[datetime]:
        # Wall times come out in order; days are enumerated per month so that a schedule
        # firing once a year (or never, like Feb 30) costs a handful of steps, not a day scan.
        for year in self.years:
            if year < floor.year:
                continue
            for month in self.months:
                if (year, month) < (floor.year, floor.month):
                    continue
                for day in self.days(year, month):
                    if (year, month, day) < (floor.year, floor.month, floor.day):
                        continue
                    for hour in self.hours:
                        for minute in self.minutes:
                            wall = datetime(year, month, day, hour, minute)
                            if wall >= floor:
                                yield wall


def _instant_of(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall-clock time, its first one if repeated, None if it is skipped."""
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return instant


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidScheduleExpression(f"unknown time zone {timezone!r}") from None


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def _parse_rate(body: str) -> timedelta:
    match = re.fullmatch(r"(\S+) (\S+)", body)
    if match is None:
        raise InvalidScheduleExpression(
            f"rate({body}) must be a value and a unit separated by one space, e.g. rate(5 minutes)"
        )
    value_text, unit = match.groups()
    if not _DIGITS.fullmatch(value_text) or int(value_text) == 0:
        raise InvalidScheduleExpression(f"rate value {value_text!r} must be a positive whole number")
    value = int(value_text)
    singular = unit.removesuffix("s")
    if singular not in _RATE_UNITS:
        raise InvalidScheduleExpression(f"rate unit {unit!r} must be one of minute(s), hour(s), day(s)")
    if value == 1 and unit != singular:
        raise InvalidScheduleExpression(f"rate(1 {unit}) must use the singular unit: rate(1 {singular})")
    if value > 1 and unit == singular:
        raise InvalidScheduleExpression(f"rate({value} {unit}) must use the plural unit: rate({value} {singular}s)")
    return value * _RATE_UNITS[singular]


def _parse_at(body: str, zone: ZoneInfo) -> datetime:
    match = _AT.fullmatch(body)
    if match is None:
        raise InvalidScheduleExpression(f"at({body}) must look like at(yyyy-mm-ddThh:mm:ss)")
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        wall = datetime(year, month, day, hour, minute, second)
    except ValueError as error:
        raise InvalidScheduleExpression(f"at({body}) is not a valid date and time: {error}") from None
    return wall.replace(tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i
    wraps: bool = True

    def error(self, token: str, problem: str) -> InvalidScheduleExpression:
        return InvalidScheduleExpression(f"cron field {self.name!r}: {token!r} {problem}")

    def value(self, token: str) -> int:
        if token in self.names:
            return self.low + self.names.index(token)
        if not _DIGITS.fullmatch(token):
            raise self.error(token, "is not a number or a name" if self.names else "is not a number")
        number = int(token)
        if not self.low <= number <= self.high:
            raise self.error(token, f"is out of range {self.low}-{self.high}")
        return number


_MINUTES: Final = _Field("minutes", 0, 59)
_HOURS: Final = _Field("hours", 0, 23)
_DAY_OF_MONTH: Final = _Field("day-of-month", 1, 31)
_MONTH: Final = _Field(
    "month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
)
_DAY_OF_WEEK: Final = _Field("day-of-week", 1, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
_YEAR: Final = _Field("year", 1970, 2199, wraps=False)
_CRON_FIELDS: Final = "minutes hours day-of-month month day-of-week year"


def _parse_cron(expression: str, body: str, zone: ZoneInfo, start: datetime | None) -> CronSchedule:
    tokens = body.upper().split()
    if len(tokens) != 6:
        raise InvalidScheduleExpression(
            f"cron expressions have 6 fields ({_CRON_FIELDS}), got {len(tokens)} in {expression!r}"
        )
    minutes, hours, day_of_month, month, day_of_week, year = tokens
    if (day_of_month == "?") == (day_of_week == "?"):
        raise InvalidScheduleExpression(
            "cron fields 'day-of-month' and 'day-of-week': exactly one of them must be '?', "
            f"got {day_of_month!r} and {day_of_week!r}"
        )
    days = _parse_day_of_week(day_of_week) if day_of_month == "?" else _parse_day_of_month(day_of_month)
    return CronSchedule(
        expression=expression,
        zone=zone,
        minutes=_parse_values(minutes, _MINUTES),
        hours=_parse_values(hours, _HOURS),
        months=_parse_values(month, _MONTH),
        years=_parse_values(year, _YEAR),
        days=days,
        start=start,
    )


def _parse_values(text: str, spec: _Field) -> tuple[int, ...]:
    """The sorted values of a comma-separated list of ``*``, ``a``, ``a-b`` and ``x/step`` items."""
    values: set[int] = set()
    for item in text.split(","):
        values.update(_parse_item(item, spec))
    return tuple(sorted(values))


def _parse_item(item: str, spec: _Field) -> list[int]:
    if not item:
        raise spec.error(item, "is an empty list item")
    span, has_step, step_text = item.partition("/")
    step = 1
    if has_step:
        width = spec.high - spec.low + 1
        if not _DIGITS.fullmatch(step_text) or not 1 <= int(step_text) <= width:
            raise spec.error(step_text, f"is not a valid increment (1-{width})")
        step = int(step_text)
    if span == "*":
        first, last = spec.low, spec.high
    elif "-" in span:
        first_text, _, last_text = span.partition("-")
        first, last = spec.value(first_text), spec.value(last_text)
    else:
        first = spec.value(span)
        last = spec.high if has_step else first
    if first <= last:
        sequence = list(range(first, last + 1))
    elif spec.wraps:
        sequence = [*range(first, spec.high + 1), *range(spec.low, last + 1)]
    else:
        raise spec.error(span, "is a range whose start is after its end")
    return sequence[::step]


def _parse_day_of_month(text: str) -> _DaySelector:
    if text == "L":
        return lambda year, month: [_days_in(year, month)]
    if text == "LW":
        return _last_weekday_of_month
    if "L" in text or "W" in text:
        if not text.endswith("W") or "," in text or "-" in text or "/" in text:
            raise _DAY_OF_MONTH.error(text, "is not valid: L, LW and <day>W must be the whole field")
        target = _DAY_OF_MONTH.value(text.removesuffix("W"))
        return lambda year, month: _nearest_weekday(year, month, target)
    days = _parse_values(text, _DAY_OF_MONTH)
    return lambda year, month: [day for day in days if day <= _days_in(year, month)]


def _parse_day_of_week(text: str) -> _DaySelector:
    if text == "L":
        # "L" alone is the last day of the week, so every Saturday.
        return _weekdays({7})
    if "#" in text or text.endswith("L"):
        if any(mark in text for mark in ",-/"):
            raise _DAY_OF_WEEK.error(text, "is not valid: <day>L and <day>#<n> must be the whole field")
        if text.endswith("L"):
            last_of = _DAY_OF_WEEK.value(text.removesuffix("L"))
            return lambda year, month: _weekday_days(year, month, last_of)[-1:]
        weekday_text, _, nth_text = text.partition("#")
        weekday = _DAY_OF_WEEK.value(weekday_text)
        if not _DIGITS.fullmatch(nth_text) or not 1 <= int(nth_text) <= 5:
            raise _DAY_OF_WEEK.error(nth_text, "is out of range 1-5 for the occurrence after '#'")
        nth = int(nth_text)
        return lambda year, month: _weekday_days(year, month, weekday)[nth - 1 : nth]
    return _weekdays(set(_parse_values(text, _DAY_OF_WEEK)))


def _weekdays(weekdays: set[int]) -> _DaySelector:
    return lambda year, month: [
        day for day in range(1, _days_in(year, month) + 1) if _aws_weekday(date(year, month, day)) in weekdays
    ]


def _days_in(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _aws_weekday(day: date) -> int:
    # AWS numbers the week 1=SUN..7=SAT; Python's weekday() is 0=MON..6=SUN.
    return (day.weekday() + 1) % 7 + 1


def _weekday_days(year: int, month: int, weekday: int) -> list[int]:
    return _weekdays({weekday})(year, month)


def _last_weekday_of_month(year: int, month: int) -> list[int]:
    last = _days_in(year, month)
    return _nearest_weekday(year, month, last)


def _nearest_weekday(year: int, month: int, target: int) -> list[int]:
    """The weekday (MON-FRI) nearest ``target`` without leaving the month, as Quartz's ``W``."""
    last = _days_in(year, month)
    if target > last:
        return []
    weekday = date(year, month, target).weekday()
    if weekday == 5:  # Saturday: the Friday before, unless that is in the previous month
        return [target - 1] if target > 1 else [target + 2]
    if weekday == 6:  # Sunday: the Monday after, unless that is in the next month
        return [target + 1] if target < last else [target - 2]
    return [target]
