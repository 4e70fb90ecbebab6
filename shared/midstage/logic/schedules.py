"""EventBridge Scheduler expressions: checked before a schedule is created, and read here to know
when it fires (previews, whether a recurring campaign has another run, DST-correct times). The
local cloud fires its schedules with this same module (`read_schedule`), so what the product
accepts and when it expects a firing is what the emulator does.

Three forms, as the EventBridge Scheduler user guide ("Schedule types") documents them:

* ``at(yyyy-mm-ddThh:mm:ss)``: once, at that wall-clock time in the schedule's time zone.
* ``rate(value unit)``: a positive whole value and minute(s), hour(s) or day(s): singular for 1,
  plural above. A rate is a fixed duration (a "day" is 24 hours, whatever the clocks do), counted
  from the schedule's start date; it fires at the start itself.
* ``cron(minutes hours day-of-month month day-of-week year)``: six fields read on the wall clock
  of the time zone. Allowed per field (the guide's table):

      minutes       0-59              , - * /
      hours         0-23              , - * /
      day-of-month  1-31              , - * ? / L W
      month         1-12 or JAN-DEC   , - * /
      day-of-week   1-7 or SUN-SAT    , - * ? L #
      year          1970-2199         , - * /

  Exactly one of day-of-month and day-of-week is ``?``. ``a/n`` starts at ``a`` and steps by
  ``n`` (``*/n`` from the field's first value); ``a-b`` may wrap (``22-2`` hours, ``FRI-MON``),
  except in years. ``L`` (last day of the month), ``LW`` (last weekday), ``<day>W`` (the weekday
  nearest that day, never leaving the month), ``L`` in day-of-week (Saturday, the week's last
  day), ``<weekday>L`` (the month's last such weekday) and ``<weekday>#<n>`` (its n-th, 1-5) each
  stand alone in their field: the guide allows one ``#`` expression only, and this module holds
  the other special forms to the same rule rather than guess at combinations. Day-of-week takes
  no increments (the table lists no ``/`` for it). Names are read in any case.

Daylight saving time, as the guide states it for cron: a wall-clock time that does not exist
(clocks spring forward) is skipped, and one that happens twice (clocks fall back) fires once, at
its first instant. A rate ignores the clocks. An ``at()`` time that does not exist fires when
it would have with the offset in force before the change (02:30 becomes 03:30); a repeated one
fires at its first instant. ``start`` and ``end`` are the schedule's StartDate (inclusive) and
EndDate (exclusive) and apply to rate and cron only, as they do in Scheduler.
"""

from __future__ import annotations

import calendar
import importlib.resources
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Final, TypeVar
from zoneinfo import ZoneInfo

from midstage.errors import ScheduleError as ScheduleError
from midstage.logic.conditions import Issue

__all__ = [
    "MAX_EXPRESSION_CHARS",
    "MAX_OCCURRENCES",
    "AtExpression",
    "CronExpression",
    "Expression",
    "RateExpression",
    "Schedule",
    "ScheduleError",
    "at_expression",
    "occurrences",
    "parse_expression",
    "read_schedule",
    "validate_expression",
    "zone_named",
]

MAX_EXPRESSION_CHARS = 256
MAX_OCCURRENCES = 1000
# Scheduler documents no upper bound; a million units (about 2,700 years of days) is past any
# real schedule and keeps the arithmetic far from datetime's limits.
MAX_RATE_VALUE = 1_000_000
MAX_ZONE_CHARS = 64

_FORM: Final = re.compile(r"(rate|cron|at)\((.*)\)", re.DOTALL)
_AT: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")
_DIGITS: Final = re.compile(r"[0-9]{1,9}")
_RATE_UNITS: Final = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}

_T = TypeVar("_T")
# The days of one (year, month) a cron expression fires on, ascending.
DaySelector = Callable[[int, int], list[int]]


@dataclass(frozen=True)
class AtExpression:
    wall: datetime  # naive: the wall-clock time in the schedule's zone


@dataclass(frozen=True)
class RateExpression:
    period: timedelta


@dataclass(frozen=True)
class CronExpression:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    days: DaySelector = field(compare=False, repr=False)

    def ever_fires(self) -> bool:
        """False for a day that never exists in the months and years allowed (30 2 ? or 31 4 ?)."""
        return any(self.days(year, month) for year in self.years for month in self.months)


Expression = AtExpression | RateExpression | CronExpression


# ----------------------------------------------------------------------------- checking
def validate_expression(expression: str, timezone: str) -> list[Issue]:
    """Everything Scheduler would refuse, located at /expression or /timezone (prefix them with
    where the pair sits in a definition); [] when both are fine."""
    parsed, problems = _parse(expression)
    issues = [Issue("/expression", message) for message in problems]
    if isinstance(parsed, CronExpression) and not parsed.ever_fires():
        issues.append(Issue("/expression", "never fires: no day matches its day, month and year fields together"))
    if zone_named(timezone) is None:
        issues.append(Issue("/timezone", f"not an IANA time zone: {str(timezone)[:80]!r} (e.g. Europe/Paris)"))
    return issues


def parse_expression(expression: str) -> Expression:
    """The expression's meaning; raises ScheduleError with every problem found."""
    parsed, problems = _parse(expression)
    if problems or parsed is None:
        raise ScheduleError([Issue("/expression", message) for message in problems])
    return parsed


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone of that name, or None. Only names in the zone database count (the tzdata
    package's list, the same on every host): a directory ("Europe"), a path, the host's
    "localtime" or tzdata's placeholder "Factory" is not a zone to schedule in."""
    if not isinstance(name, str) or len(name) > MAX_ZONE_CHARS or name not in _zone_names():
        return None
    return ZoneInfo(name)


@cache
def _zone_names() -> frozenset[str]:
    listed = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return frozenset(listed) - {"Factory"}


def _parse(expression: str) -> tuple[Expression | None, list[str]]:
    if not isinstance(expression, str):
        return None, ["must be a string like cron(0 10 * * ? *), rate(1 day) or at(2026-12-01T10:00:00)"]
    if len(expression) > MAX_EXPRESSION_CHARS:
        return None, [f"longer than {MAX_EXPRESSION_CHARS} characters"]
    match = _FORM.fullmatch(expression)
    if match is None:
        shown = expression[:80]
        return None, [f"{shown!r} is not cron(...), rate(...) or at(...) (lower case, nothing around it)"]
    kind, body = match.groups()
    try:
        if kind == "at":
            return AtExpression(_parse_at(body)), []
        if kind == "rate":
            return RateExpression(_parse_rate(body)), []
    except _Invalid as error:
        return None, [str(error)]
    return _parse_cron(body)


class _Invalid(ValueError):
    pass


def _parse_at(body: str) -> datetime:
    match = _AT.fullmatch(body)
    if match is None:
        raise _Invalid(f"at({body[:40]}) must look like at(yyyy-mm-ddThh:mm:ss), without a zone or fraction")
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second)
    except ValueError as error:
        raise _Invalid(f"at({body}) is not a real date and time: {error}") from None


def _parse_rate(body: str) -> timedelta:
    parts = body.split(" ")
    if len(parts) != 2:
        raise _Invalid(f"rate({body[:40]}) must be a value and a unit separated by one space, like rate(5 minutes)")
    value_text, unit = parts
    if not _DIGITS.fullmatch(value_text) or not 1 <= int(value_text) <= MAX_RATE_VALUE:
        raise _Invalid(f"rate value {value_text[:20]!r} must be a whole number from 1 to {MAX_RATE_VALUE:,}")
    value = int(value_text)
    singular = unit.removesuffix("s")
    if singular not in _RATE_UNITS:
        raise _Invalid(f"rate unit {unit[:20]!r} must be minute(s), hour(s) or day(s)")
    if value == 1 and unit != singular:
        raise _Invalid(f"rate(1 {unit}) takes the singular unit: rate(1 {singular})")
    if value > 1 and unit == singular:
        raise _Invalid(f"rate({value} {unit}) takes the plural unit: rate({value} {singular}s)")
    return value * _RATE_UNITS[singular]


# ----------------------------------------------------------------------------- cron fields
@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i
    wraps: bool = True
    marks: str = ",-*/"

    def fail(self, token: str, problem: str) -> _Invalid:
        return _Invalid(f"cron {self.name} field: {token[:20]!r} {problem}")

    def value(self, token: str) -> int:
        if token in self.names:
            return self.low + self.names.index(token)
        if not _DIGITS.fullmatch(token):
            kind = f"a number {self.low}-{self.high} or a name {self.names[0]}-{self.names[-1]}" if self.names else None
            raise self.fail(token, f"is not {kind or f'a number {self.low}-{self.high}'}")
        number = int(token)
        if not self.low <= number <= self.high:
            extra = f" (or {self.names[0]}-{self.names[-1]})" if self.names else ""
            raise self.fail(token, f"is out of range {self.low}-{self.high}{extra}")
        return number


_MINUTES: Final = _Field("minutes", 0, 59)
_HOURS: Final = _Field("hours", 0, 23)
_DAY_OF_MONTH: Final = _Field("day-of-month", 1, 31, marks=",-*?/LW")
_MONTHS: Final = _Field(
    "month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
)
_DAY_OF_WEEK: Final = _Field("day-of-week", 1, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), marks=",-*?L#")
_YEARS: Final = _Field("year", 1970, 2199, wraps=False)
_FIELDS: Final = (_MINUTES, _HOURS, _DAY_OF_MONTH, _MONTHS, _DAY_OF_WEEK, _YEARS)
_FIELD_NAMES: Final = " ".join(spec.name for spec in _FIELDS)


def _mark_problem(token: str, spec: _Field) -> str | None:
    """Why a field uses a character its row of the table does not list, or None."""
    for word in re.findall(r"[A-Z]+", token):
        named = word in spec.names or (word.endswith("L") and word[:-1] in spec.names)  # FRIL: the last Friday
        if not named and not set(word) <= {"L", "W"}:  # L and W alone are marks, judged below
            names = f"names {spec.names[0]}-{spec.names[-1]}" if spec.names else "numbers only"
            return f"cron {spec.name} field: {word[:10]!r} in {token[:20]!r} is not a name this field takes ({names})"
    residue = token
    for name in spec.names:
        residue = residue.replace(name, " ")
    for char in residue:
        if char.isdigit() or char == " " or char in spec.marks:
            continue
        takes = " ".join(spec.marks)
        return f"cron {spec.name} field: {token[:20]!r} uses {char!r}, which this field does not take ({takes})"
    return None


def _parse_cron(body: str) -> tuple[CronExpression | None, list[str]]:
    if any(char.isspace() and char != " " for char in body):
        return None, ["cron fields are separated by spaces (no tabs or line breaks)"]
    tokens = body.upper().split()
    if len(tokens) != 6:
        return None, [f"cron takes 6 fields ({_FIELD_NAMES}), got {len(tokens)}"]
    problems = [p for token, spec in zip(tokens, _FIELDS, strict=True) if (p := _mark_problem(token, spec))]
    if problems:
        return None, problems
    minutes_text, hours_text, dom_text, month_text, dow_text, year_text = tokens

    def attempt(parse: Callable[[], _T]) -> _T | None:
        try:
            return parse()
        except _Invalid as error:
            problems.append(str(error))
            return None

    minutes = attempt(lambda: _values(minutes_text, _MINUTES))
    hours = attempt(lambda: _values(hours_text, _HOURS))
    by_month_day = None if dom_text == "?" else attempt(lambda: _day_of_month(dom_text))
    months = attempt(lambda: _values(month_text, _MONTHS))
    by_weekday = None if dow_text == "?" else attempt(lambda: _day_of_week(dow_text))
    years = attempt(lambda: _values(year_text, _YEARS))
    if (dom_text == "?") == (dow_text == "?"):
        problems.append(
            "cron day-of-month and day-of-week: exactly one of them must be ? "
            f"(got {dom_text[:20]!r} and {dow_text[:20]!r}), as in cron(0 10 * * ? *) or cron(0 10 ? * MON *)"
        )
    days = by_month_day or by_weekday
    if problems or minutes is None or hours is None or months is None or years is None or days is None:
        return None, problems
    return CronExpression(minutes, hours, months, years, days), []


def _values(text: str, spec: _Field) -> tuple[int, ...]:
    """A comma-separated list of `*`, `a`, `a-b`, `*/n`, `a/n` and `a-b/n`, sorted."""
    found: set[int] = set()
    for item in text.split(","):
        found.update(_item(item, spec))
    return tuple(sorted(found))


def _item(item: str, spec: _Field) -> list[int]:
    if not item:
        raise spec.fail(item, "is an empty list item")
    span, has_step, step_text = item.partition("/")
    step = 1
    if has_step:
        largest = spec.high - spec.low
        if not _DIGITS.fullmatch(step_text) or not 1 <= int(step_text) <= largest:
            raise spec.fail(item, f"has an increment that is not a whole number from 1 to {largest}")
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
        raise spec.fail(item, "is a range that ends before it starts")
    return sequence[::step]


def _day_of_month(text: str) -> DaySelector:
    if "?" in text:
        raise _DAY_OF_MONTH.fail(text, "is not valid: ? stands alone")
    if text == "L":
        return lambda year, month: [_days_in(year, month)]
    if text == "LW":
        return lambda year, month: _nearest_weekday(year, month, _days_in(year, month))
    if "L" in text or "W" in text:
        target = text.removesuffix("W")
        if not text.endswith("W") or not _DIGITS.fullmatch(target):
            raise _DAY_OF_MONTH.fail(text, "is not valid: L, LW and <day>W stand alone in day-of-month")
        day = _DAY_OF_MONTH.value(target)
        return lambda year, month: _nearest_weekday(year, month, day)
    days = _values(text, _DAY_OF_MONTH)
    return lambda year, month: [day for day in days if day <= _days_in(year, month)]


def _day_of_week(text: str) -> DaySelector:
    if "?" in text:
        raise _DAY_OF_WEEK.fail(text, "is not valid: ? stands alone")
    if text == "L":
        return _weekdays(frozenset({7}))  # the week's last day: Saturday
    if "#" in text:
        weekday_text, _, nth_text = text.partition("#")
        if any(mark in text for mark in ",-*/L") or text.count("#") != 1 or not weekday_text:
            raise _DAY_OF_WEEK.fail(text, "is not valid: <weekday>#<n> stands alone (one # expression only)")
        weekday = _DAY_OF_WEEK.value(weekday_text)
        if not _DIGITS.fullmatch(nth_text) or not 1 <= int(nth_text) <= 5:
            raise _DAY_OF_WEEK.fail(text, "is not valid: the n in <weekday>#<n> is 1-5")
        nth = int(nth_text)
        return lambda year, month: _weekday_dates(year, month, weekday)[nth - 1 : nth]
    if "L" in text:  # no weekday name holds an L
        weekday_text = text.removesuffix("L")
        if not text.endswith("L") or any(mark in weekday_text for mark in ",-*/L"):
            raise _DAY_OF_WEEK.fail(text, "is not valid: L and <weekday>L stand alone in day-of-week")
        weekday = _DAY_OF_WEEK.value(weekday_text)
        return lambda year, month: _weekday_dates(year, month, weekday)[-1:]
    return _weekdays(frozenset(_values(text, _DAY_OF_WEEK)))


def _days_in(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _aws_weekday(day: date) -> int:
    """Scheduler counts 1=SUN .. 7=SAT; Python's weekday() is 0=MON .. 6=SUN."""
    return (day.weekday() + 1) % 7 + 1


def _weekdays(weekdays: frozenset[int]) -> DaySelector:
    def select(year: int, month: int) -> list[int]:
        first = _aws_weekday(date(year, month, 1))
        return [d for d in range(1, _days_in(year, month) + 1) if (first + d - 2) % 7 + 1 in weekdays]

    return select


def _weekday_dates(year: int, month: int, weekday: int) -> list[int]:
    return _weekdays(frozenset({weekday}))(year, month)


def _nearest_weekday(year: int, month: int, target: int) -> list[int]:
    """The weekday (Monday-Friday) nearest `target` without leaving the month; none when the
    month is shorter than `target`."""
    last = _days_in(year, month)
    if target > last:
        return []
    weekday = date(year, month, target).weekday()
    if weekday == 5:  # Saturday: the Friday before, or the Monday after when that is in another month
        return [target - 1] if target > 1 else [target + 2]
    if weekday == 6:  # Sunday: the Monday after, or the Friday before at the month's end
        return [target + 1] if target < last else [target - 2]
    return [target]


# ----------------------------------------------------------------------------- firing times
@dataclass(frozen=True)
class Schedule:
    """A checked expression, read on the wall clock of `zone`, with its StartDate if any: when it
    fires. `start` (aware) is inclusive; a rate counts its periods from it, and without it from
    the moment asked about (Scheduler starts a rate when the schedule is created)."""

    expression: str
    meaning: Expression
    zone: ZoneInfo
    start: datetime | None = None

    def __post_init__(self) -> None:
        if self.start is not None:
            object.__setattr__(self, "start", _utc(self.start, "start"))

    @property
    def once_at(self) -> datetime | None:
        """The one instant of an at() schedule; None for rate and cron."""
        if isinstance(self.meaning, AtExpression):
            return self.meaning.wall.replace(tzinfo=self.zone).astimezone(UTC)
        return None

    def firings(self, after: datetime) -> Iterator[datetime]:
        """Every firing strictly after `after` (aware), in order, as aware UTC datetimes. at() ignores
        the start, as Scheduler does."""
        after = _utc(after, "after")
        meaning = self.meaning
        if isinstance(meaning, AtExpression):
            instant = self.once_at
            return iter([instant] if instant is not None and instant > after else [])
        if isinstance(meaning, RateExpression):
            return _rate_firings(meaning, after, self.start)
        return _cron_firings(meaning, self.zone, after, self.start)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first firing strictly after `moment` (aware), or None when it never fires again."""
        return next(self.firings(moment), None)


def read_schedule(expression: str, timezone: str = "UTC", start: datetime | None = None) -> Schedule:
    """The schedule Scheduler would create from these, or ScheduleError with every issue
    `validate_expression` finds (a cron that never fires included); ValueError for a naive start."""
    issues = validate_expression(expression, timezone)
    if issues:
        raise ScheduleError(issues)
    zone = zone_named(timezone)
    assert zone is not None  # validated above
    return Schedule(expression, parse_expression(expression), zone, start)


def occurrences(
    expression: str,
    timezone: str,
    after: datetime,
    limit: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[datetime]:
    """The next `limit` firings strictly after `after`, as aware UTC datetimes, in order.

    A rate without `start` counts its periods from `after` (Scheduler starts a rate when the
    schedule is created). Raises ScheduleError for an invalid expression or zone, ValueError for
    a naive datetime or a limit outside 0..MAX_OCCURRENCES. A cron that can never fire has none.
    """
    if not 0 <= limit <= MAX_OCCURRENCES:
        raise ValueError(f"limit must be 0..{MAX_OCCURRENCES}, got {limit}")
    after = _utc(after, "after")
    end = None if end is None else _utc(end, "end")
    parsed = parse_expression(expression)
    zone = zone_named(timezone)
    if zone is None:
        raise ScheduleError(validate_expression(expression, timezone))
    found: list[datetime] = []
    for instant in Schedule(expression, parsed, zone, start).firings(after):
        if len(found) >= limit or (end is not None and instant >= end):
            break
        found.append(instant)
    return found


def at_expression(moment: datetime, timezone: str = "UTC") -> str:
    """The at() expression firing at `moment` (to the second) when read in `timezone`.

    Scheduler's at() takes wall-clock time without an offset, so a moment in the second pass of
    a repeated hour has no at() of its own in that zone: give such moments in UTC.
    """
    zone = zone_named(timezone)
    if zone is None:
        raise ScheduleError([Issue("/timezone", f"not an IANA time zone: {str(timezone)[:80]!r}")])
    wall = _utc(moment, "moment").astimezone(zone)
    return f"at({wall:%Y-%m-%dT%H:%M:%S})"


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC)


def _rate_firings(rate: RateExpression, after: datetime, start: datetime | None) -> Iterator[datetime]:
    anchor = start if start is not None else after
    periods = 0 if anchor > after else (after - anchor) // rate.period + 1
    instant = anchor + periods * rate.period
    while True:
        yield instant
        instant += rate.period


def _cron_firings(cron: CronExpression, zone: ZoneInfo, after: datetime, start: datetime | None) -> Iterator[datetime]:
    begin = start if start is not None and start > after else after
    floor = begin.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    for wall in _walls_from(cron, floor):
        instant = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: a repeated time's first instant
        if instant.astimezone(zone).replace(tzinfo=None) != wall:
            continue  # skipped by a spring-forward change
        # A repeated wall time maps to its first instant, which may precede `after`: it has fired.
        if instant > after and (start is None or instant >= start):
            yield instant


def _walls_from(cron: CronExpression, floor: datetime) -> Iterator[datetime]:
    """The expression's wall-clock times from `floor` on, in order; months are enumerated by
    their matching days, so a schedule that fires once a year costs a few steps, not a scan."""
    for year in cron.years:
        if year < floor.year:
            continue
        for month in cron.months:
            if (year, month) < (floor.year, floor.month):
                continue
            for day in cron.days(year, month):
                if (year, month, day) < (floor.year, floor.month, floor.day):
                    continue
                first_day = (year, month, day) == (floor.year, floor.month, floor.day)
                for hour in cron.hours:
                    if first_day and hour < floor.hour:
                        continue
                    for minute in cron.minutes:
                        wall = datetime(year, month, day, hour, minute)
                        if wall >= floor:
                            yield wall
