"""Scheduler expressions: what is accepted and refused (with where and why), and when a schedule
fires: DST changes in Europe and the US, rates that ignore the clocks, L W # days, start and end,
at() round trips, and a brute-force minute-by-minute oracle for cron. The local cloud fires its
schedules with this same parser (`read_schedule`); the cases at the end come from the tests of the
parser it had of its own before, with the user guides' sections they cite:

EventBridge "Creating a rule that runs on a schedule" - "Cron expressions" (CRON) and "Rate
expressions" (RATE); EventBridge Scheduler "Schedule types" - "Rate-based schedules" (SCHED-RATE),
"One-time schedules" (SCHED-AT) and "Daylight savings time" (SCHED-DST).
"""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstage.logic.conditions import Issue
from midstage.logic.schedules import (
    MAX_OCCURRENCES,
    AtExpression,
    CronExpression,
    RateExpression,
    Schedule,
    ScheduleError,
    at_expression,
    occurrences,
    parse_expression,
    read_schedule,
    validate_expression,
    zone_named,
)

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


def messages(issues: list[Issue]) -> str:
    return " | ".join(issue.message for issue in issues)


# ------------------------------------------------------------------------------ accepted
@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 10 * * ? *)",
        "cron(15 12 * * ? *)",
        "cron(0 18 ? * MON-FRI *)",
        "cron(0 8 1 * ? *)",
        "cron(0/15 * * * ? *)",
        "cron(0/10 * ? * MON-FRI *)",
        "cron(0/5 8-17 ? * MON-FRI *)",
        "cron(0 9 ? * 2#1 *)",
        "cron(0 10 ? * 6L 2026-2030)",
        "cron(0 0 L * ? *)",
        "cron(0 0 LW * ? *)",
        "cron(0 0 3W * ? *)",
        "cron(0 0 ? * L *)",
        "cron(0,30 22-2 ? * FRI-MON *)",
        "cron(0 10 1,15 JAN,JUL ? */2)",
        "cron(0 10 ? * mon-fri *)",
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(1 hour)",
        "rate(12 hours)",
        "rate(1 day)",
        "rate(7 days)",
        "at(2026-12-01T10:00:00)",
    ],
)
def test_given_an_expression_scheduler_documents_when_validated_then_it_is_accepted(expression: str) -> None:
    assert validate_expression(expression, PARIS) == []


def test_given_each_form_when_parsed_then_its_meaning_is_read() -> None:
    assert parse_expression("rate(90 minutes)") == RateExpression(timedelta(minutes=90))
    assert parse_expression("at(2026-12-01T10:00:00)") == AtExpression(datetime(2026, 12, 1, 10))
    cron = parse_expression("cron(5/20 22-2 ? JAN-MAR MON 2027)")
    assert isinstance(cron, CronExpression)
    assert cron.minutes == (5, 25, 45)
    assert cron.hours == (0, 1, 2, 22, 23)
    assert cron.months == (1, 2, 3)
    assert cron.years == (2027,)


# ------------------------------------------------------------------------------ refused
@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("", "is not cron(...), rate(...) or at(...)"),
        ("every day at 10", "is not cron(...), rate(...) or at(...)"),
        ("CRON(0 10 * * ? *)", "lower case"),
        (" cron(0 10 * * ? *)", "nothing around it"),
        ("cron(0 10 * * ? *) ", "nothing around it"),
        ("cron(0 10 * * ?)", "takes 6 fields"),
        ("cron(0 0 10 * * ? *)", "takes 6 fields"),
        ("cron(0\t10 * * ? *)", "separated by spaces"),
        ("cron(60 10 * * ? *)", "minutes field: '60' is out of range 0-59"),
        ("cron(0 24 * * ? *)", "hours field: '24' is out of range 0-23"),
        ("cron(0 10 0 * ? *)", "day-of-month field: '0' is out of range 1-31"),
        ("cron(0 10 32 * ? *)", "day-of-month field: '32' is out of range 1-31"),
        ("cron(0 10 * 13 ? *)", "month field: '13' is out of range 1-12"),
        ("cron(0 10 * FOO ? *)", "'FOO' in 'FOO' is not a name this field takes (names JAN-DEC)"),
        ("cron(0 10 ? * 8 *)", "day-of-week field: '8' is out of range 1-7"),
        ("cron(0 10 ? * 0 *)", "day-of-week field: '0' is out of range 1-7"),
        ("cron(0 10 * * ? 1969)", "year field: '1969' is out of range 1970-2199"),
        ("cron(0 10 * * ? 2200)", "year field: '2200' is out of range 1970-2199"),
        ("cron(0 10 * * ? 2030-2026)", "is a range that ends before it starts"),
        ("cron(0 10 * * * *)", "exactly one of them must be ?"),
        ("cron(0 10 ? * ? *)", "exactly one of them must be ?"),
        ("cron(0 10 1 * MON *)", "exactly one of them must be ?"),
        ("cron(0 10 ? * MON/2 *)", "uses '/', which this field does not take"),
        ("cron(0 10 ? * 3#1,6#3 *)", "one # expression only"),
        ("cron(0 10 ? * 3#6 *)", "the n in <weekday>#<n> is 1-5"),
        ("cron(0 10 ? * #2 *)", "<weekday>#<n> stands alone"),
        ("cron(0 10 ? * 2L,6L *)", "stand alone in day-of-week"),
        ("cron(0 10 1W,15W * ? *)", "stand alone in day-of-month"),
        ("cron(0 10 L-3 * ? *)", "stand alone in day-of-month"),
        ("cron(0 10 ?,1 * ? *)", "? stands alone"),
        ("cron(0 L * * ? *)", "hours field: 'L' uses 'L'"),
        ("cron(0 10 * * ? W)", "year field"),
        ("cron(0 10 15# * ? *)", "uses '#', which this field does not take"),
        ("cron(0/0 10 * * ? *)", "increment that is not a whole number from 1 to 59"),
        ("cron(0/60 10 * * ? *)", "increment that is not a whole number from 1 to 59"),
        ("cron(0 10 1,,2 * ? *)", "empty list item"),
        ("cron(0 10 31 2 ? *)", "never fires"),
        ("cron(0 0 30 2 ? *)", "never fires"),
        ("cron(0 10 30,31 FEB ? *)", "never fires"),
        ("rate(0 minutes)", "must be a whole number from 1 to"),
        ("rate(-5 minutes)", "must be a whole number from 1 to"),
        ("rate(1.5 hours)", "must be a whole number from 1 to"),
        ("rate(99999999 days)", "must be a whole number from 1 to"),
        ("rate(1 minutes)", "takes the singular unit: rate(1 minute)"),
        ("rate(1 hours)", "takes the singular unit: rate(1 hour)"),
        ("rate(5 minute)", "takes the plural unit: rate(5 minutes)"),
        ("rate(5 hour)", "takes the plural unit: rate(5 hours)"),
        ("rate(5 weeks)", "must be minute(s), hour(s) or day(s)"),
        ("rate(5 minutes", "is not cron(...), rate(...) or at(...)"),
        ("rate(2 weeks)", "must be minute(s), hour(s) or day(s)"),
        ("rate(5minutes)", "separated by one space"),
        ("rate(5  minutes)", "separated by one space"),
        ("at(2026-12-01 10:00:00)", "must look like at(yyyy-mm-ddThh:mm:ss)"),
        ("at(2026-12-01T10:00:00Z)", "must look like at(yyyy-mm-ddThh:mm:ss)"),
        ("at(2026-12-01T10:00)", "must look like at(yyyy-mm-ddThh:mm:ss)"),
        ("at(2026-02-30T10:00:00)", "is not a real date and time"),
        ("at(2026-12-01T24:00:00)", "is not a real date and time"),
        ("cron(" + "1," * 200 + "2 10 * * ? *)", "longer than 256 characters"),
    ],
)
def test_given_an_expression_scheduler_refuses_when_validated_then_the_issue_is_at_expression_and_says_why(
    expression: str, why: str
) -> None:
    issues = validate_expression(expression, PARIS)

    assert issues, expression
    assert {issue.location for issue in issues} == {"/expression"}
    assert why in messages(issues)


def test_given_several_bad_cron_fields_when_validated_then_every_field_is_reported_at_once() -> None:
    issues = validate_expression("cron(60 24 0 13 8 1969)", "UTC")

    text = messages(issues)
    for field in ("minutes", "hours", "day-of-month", "month", "day-of-week", "year"):
        assert f"cron {field} field" in text
    assert "exactly one of them must be ?" in text


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "Europe", "europe/paris", "localtime", "Factory", "../../etc/passwd", "", "A" * 100]
)
def test_given_a_name_that_is_not_an_iana_zone_when_validated_then_the_issue_is_at_timezone(zone: str) -> None:
    issues = validate_expression("rate(1 day)", zone)

    assert [issue.location for issue in issues] == ["/timezone"]
    assert "not an IANA time zone" in issues[0].message


@pytest.mark.parametrize("zone", ["UTC", PARIS, NEW_YORK, "Pacific/Kiritimati", "Pacific/Pago_Pago", "Etc/GMT+12"])
def test_given_iana_zones_when_looked_up_then_they_are_found(zone: str) -> None:
    found = zone_named(zone)

    assert found is not None and found.key == zone


def test_given_a_bad_expression_when_parsed_then_schedule_error_carries_every_issue_for_the_api() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_expression("cron(61 25 * * ? *)")

    error = caught.value
    assert (error.status, error.code) == (400, "invalid_schedule")
    assert len(error.issues) == 2
    body = error.to_body()
    assert body["details"] == [issue.to_dict() for issue in error.issues]
    assert "and 1 more" in str(body["message"])


def test_given_a_non_string_expression_when_validated_then_it_is_refused_not_raised() -> None:
    issues = validate_expression(42, "UTC")

    assert [issue.location for issue in issues] == ["/expression"]


# ------------------------------------------------------------------------------ DST
def test_given_a_daily_cron_in_paris_when_clocks_spring_forward_then_it_keeps_its_wall_clock_time() -> None:
    fired = occurrences("cron(0 10 * * ? *)", PARIS, utc(2026, 3, 27), 4)

    assert fired == [utc(2026, 3, 27, 9), utc(2026, 3, 28, 9), utc(2026, 3, 29, 8), utc(2026, 3, 30, 8)]
    assert {moment.astimezone(ZoneInfo(PARIS)).hour for moment in fired} == {10}


@pytest.mark.parametrize(
    ("zone", "day_before", "skipped_day"),
    [(PARIS, (2026, 3, 28), (2026, 3, 29)), (NEW_YORK, (2026, 3, 7), (2026, 3, 8))],
)
def test_given_a_cron_time_the_clocks_skip_when_they_spring_forward_then_that_day_has_no_firing(
    zone: str, day_before: tuple[int, int, int], skipped_day: tuple[int, int, int]
) -> None:
    fired = occurrences("cron(30 2 * * ? *)", zone, local(zone, *day_before, 0, 0), 2)

    local_days = [moment.astimezone(ZoneInfo(zone)).date() for moment in fired]
    assert datetime(*skipped_day).date() not in local_days
    assert local_days[0] == datetime(*day_before).date()
    assert local_days[1] == datetime(*skipped_day).date() + timedelta(days=1)
    assert all(moment.astimezone(ZoneInfo(zone)).strftime("%H:%M") == "02:30" for moment in fired)


@pytest.mark.parametrize(
    ("zone", "expression", "day", "first_instant"),
    [
        (PARIS, "cron(30 2 * * ? *)", (2026, 10, 25), utc(2026, 10, 25, 0, 30)),
        (NEW_YORK, "cron(30 1 * * ? *)", (2026, 11, 1), utc(2026, 11, 1, 5, 30)),
    ],
)
def test_given_a_cron_time_that_happens_twice_when_clocks_fall_back_then_it_fires_once_at_the_first(
    zone: str, expression: str, day: tuple[int, int, int], first_instant: datetime
) -> None:
    fired = occurrences(expression, zone, local(zone, *day, 0, 0), 2)

    assert fired[0] == first_instant
    assert fired[1] - fired[0] == timedelta(hours=25)  # the next day's, after the longer day


def test_given_a_quarter_hourly_cron_in_new_york_when_clocks_fall_back_then_the_repeated_hour_is_not_repeated() -> None:
    fired = occurrences("cron(0/15 * * * ? *)", NEW_YORK, utc(2026, 11, 1, 3, 59), 9)

    # 00:00-01:45 EDT is 04:00-05:45 UTC; 01:00-01:45 EST (06:00-06:45 UTC) repeats those walls.
    first_pass = [utc(2026, 11, 1, 4, 0) + timedelta(minutes=15 * i) for i in range(8)]
    assert fired == [*first_pass, utc(2026, 11, 1, 7, 0)]


def test_given_a_search_starting_inside_the_repeated_hour_when_asked_then_that_hour_does_not_fire_again() -> None:
    second_pass = utc(2026, 11, 1, 6, 10)  # 01:10 EST, after 01:00-01:59 EDT has fired

    fired = occurrences("cron(30 1 * * ? *)", NEW_YORK, second_pass, 1)

    assert fired == [utc(2026, 11, 2, 6, 30)]


def test_given_a_daily_rate_when_clocks_change_then_it_stays_24_hours_apart_and_its_wall_time_moves() -> None:
    start = local(PARIS, 2026, 3, 28, 10, 0)

    fired = occurrences("rate(1 day)", PARIS, start - timedelta(minutes=1), 3, start=start)

    assert fired == [utc(2026, 3, 28, 9), utc(2026, 3, 29, 9), utc(2026, 3, 30, 9)]
    assert fired[1].astimezone(ZoneInfo(PARIS)).hour == 11


# ------------------------------------------------------------------------------ start, end, rate anchors
def test_given_a_rate_without_start_when_asked_then_periods_count_from_the_moment_asked() -> None:
    after = utc(2026, 5, 1, 12, 7)

    assert occurrences("rate(30 minutes)", "UTC", after, 2) == [
        after + timedelta(minutes=30),
        after + timedelta(hours=1),
    ]


def test_given_a_rate_that_started_earlier_when_asked_then_the_next_firings_keep_its_phase() -> None:
    start = utc(2026, 5, 1, 0, 10)

    fired = occurrences("rate(2 hours)", "UTC", utc(2026, 5, 1, 5, 0), 2, start=start)

    assert fired == [utc(2026, 5, 1, 6, 10), utc(2026, 5, 1, 8, 10)]


def test_given_a_start_on_a_firing_when_asked_from_before_then_the_start_itself_fires() -> None:
    start = utc(2026, 5, 4, 10)

    assert occurrences("cron(0 10 * * ? *)", "UTC", utc(2026, 5, 1), 1, start=start) == [start]
    assert occurrences("rate(1 day)", "UTC", utc(2026, 5, 1), 1, start=start) == [start]


def test_given_the_moment_of_a_firing_when_asked_from_it_then_only_later_firings_are_listed() -> None:
    firing = utc(2026, 5, 1, 10)

    assert occurrences("cron(0 10 * * ? *)", "UTC", firing, 1) == [utc(2026, 5, 2, 10)]
    assert occurrences("rate(1 hour)", "UTC", firing, 1, start=firing) == [utc(2026, 5, 1, 11)]
    assert occurrences("at(2026-05-01T10:00:00)", "UTC", firing, 1) == []


def test_given_an_end_on_a_firing_when_asked_then_the_end_is_excluded() -> None:
    fired = occurrences("cron(0 10 * * ? *)", "UTC", utc(2026, 5, 1), 10, end=utc(2026, 5, 3, 10))

    assert fired == [utc(2026, 5, 1, 10), utc(2026, 5, 2, 10)]


def test_given_an_at_expression_when_asked_before_and_after_then_it_fires_once() -> None:
    assert occurrences("at(2026-12-01T10:00:00)", PARIS, utc(2026, 11, 1), 5) == [utc(2026, 12, 1, 9)]
    assert occurrences("at(2026-12-01T10:00:00)", PARIS, utc(2026, 12, 1, 9), 5) == []


def test_given_an_at_time_the_clocks_skip_when_asked_then_it_fires_after_the_gap() -> None:
    fired = occurrences("at(2026-03-08T02:30:00)", NEW_YORK, utc(2026, 3, 1), 1)

    assert fired == [utc(2026, 3, 8, 7, 30)]
    assert fired[0].astimezone(ZoneInfo(NEW_YORK)).strftime("%H:%M") == "03:30"


def test_given_an_at_time_that_happens_twice_when_asked_then_it_fires_at_the_first() -> None:
    assert occurrences("at(2026-11-01T01:30:00)", NEW_YORK, utc(2026, 10, 1), 1) == [utc(2026, 11, 1, 5, 30)]


def test_given_a_year_field_in_the_past_when_asked_then_there_is_nothing_left() -> None:
    assert occurrences("cron(0 10 * * ? 2020)", "UTC", utc(2026, 1, 1), 3) == []


def test_given_bad_arguments_when_asked_then_they_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        occurrences("rate(1 day)", "UTC", datetime(2026, 1, 1), 1)
    with pytest.raises(ValueError, match="limit"):
        occurrences("rate(1 day)", "UTC", utc(2026, 1, 1), MAX_OCCURRENCES + 1)
    with pytest.raises(ScheduleError):
        occurrences("rate(1 days)", "UTC", utc(2026, 1, 1), 1)
    with pytest.raises(ScheduleError):
        occurrences("rate(1 day)", "Mars/Olympus", utc(2026, 1, 1), 1)
    assert occurrences("rate(1 day)", "UTC", utc(2026, 1, 1), 0) == []


# ------------------------------------------------------------------------------ special days
def days_fired(expression: str, year: int, months: int) -> list[tuple[int, int]]:
    fired = occurrences(expression, "UTC", utc(year, 1, 1) - timedelta(minutes=1), months)
    return [(moment.month, moment.day) for moment in fired if moment.year == year]


def test_given_l_in_day_of_month_when_asked_then_it_is_each_months_last_day_leap_years_included() -> None:
    fired = occurrences("cron(0 0 L * ? *)", "UTC", utc(2028, 1, 1), 3)

    assert [(m.month, m.day) for m in fired] == [(1, 31), (2, 29), (3, 31)]


@pytest.mark.parametrize(
    ("expression", "month", "day"),
    [
        ("cron(0 0 15W * ? *)", 8, 14),  # Saturday the 15th: the Friday before
        ("cron(0 0 1W * ? *)", 8, 3),  # Saturday the 1st: the Monday after, not July's Friday
        ("cron(0 0 1W * ? *)", 3, 2),  # Sunday the 1st: Monday the 2nd
        ("cron(0 0 31W * ? *)", 5, 29),  # Sunday the 31st: the Friday before, not June's Monday
        ("cron(0 0 LW * ? *)", 5, 29),  # the last day is a Sunday
        ("cron(0 0 LW * ? *)", 2, 27),  # the last day is a Saturday
        ("cron(0 0 LW * ? *)", 11, 30),  # the last day is a Monday
    ],
)
def test_given_w_in_day_of_month_when_asked_then_it_is_the_nearest_weekday_inside_the_month(
    expression: str, month: int, day: int
) -> None:
    fired = occurrences(expression, "UTC", utc(2026, month, 1) - timedelta(minutes=1), 1)

    assert [(fired[0].month, fired[0].day)] == [(month, day)]
    assert fired[0].weekday() < 5


def test_given_nth_weekday_when_a_month_has_no_fifth_then_that_month_is_skipped() -> None:
    fired = days_fired("cron(0 0 ? * 6#5 *)", 2026, 5)  # fifth Friday

    assert fired == [(1, 30), (5, 29), (7, 31), (10, 30)]


def test_given_weekday_l_when_asked_then_it_is_the_months_last_such_weekday() -> None:
    assert days_fired("cron(0 0 ? * 2L *)", 2026, 3) == [(1, 26), (2, 23), (3, 30)]  # last Monday


def test_given_l_alone_in_day_of_week_when_asked_then_it_is_every_saturday() -> None:
    fired = occurrences("cron(0 0 ? * L *)", "UTC", utc(2026, 1, 1), 5)

    assert {moment.strftime("%A") for moment in fired} == {"Saturday"}
    assert [b - a for a, b in itertools.pairwise(fired)] == [timedelta(days=7)] * 4


def test_given_wrapping_ranges_when_asked_then_they_run_past_the_fields_end() -> None:
    fired = occurrences("cron(0 22-1 ? * FRI-MON *)", "UTC", utc(2026, 5, 1, 12), 8)  # Friday May 1st

    assert [(m.day, m.hour) for m in fired] == [(1, 22), (1, 23), (2, 0), (2, 1), (2, 22), (2, 23), (3, 0), (3, 1)]


def test_given_a_weekday_name_with_l_when_asked_then_it_means_the_same_as_its_number() -> None:
    after = utc(2026, 1, 1)

    assert occurrences("cron(0 0 ? * FRIL *)", "UTC", after, 6) == occurrences("cron(0 0 ? * 6L *)", "UTC", after, 6)
    assert occurrences("cron(0 0 ? * WED#2 *)", "UTC", after, 6) == occurrences("cron(0 0 ? * 4#2 *)", "UTC", after, 6)


def test_given_names_in_any_case_when_asked_then_they_mean_the_same_days() -> None:
    after = utc(2026, 5, 1)

    assert occurrences("cron(0 10 ? * mon-fri *)", PARIS, after, 10) == occurrences(
        "cron(0 10 ? * MON-FRI *)", PARIS, after, 10
    )
    assert occurrences("cron(0 10 ? * 2-6 *)", PARIS, after, 10) == occurrences(
        "cron(0 10 ? * MON-FRI *)", PARIS, after, 10
    )


# ------------------------------------------------------------------------------ the oracle
ORACLE_ZONES = ["UTC", PARIS, NEW_YORK, "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham"]
# Around DST changes: Europe (Mar 29, Oct 25), the US (Mar 8, Nov 1; and Mar 10, Nov 3 2024),
# Lord Howe's half-hour shifts (Apr 5, Oct 4) and Chatham's (Apr 5, Sep 27); and a quiet June.
ORACLE_STARTS = [
    utc(2026, 3, 28),
    utc(2026, 10, 24),
    utc(2026, 3, 7),
    utc(2026, 10, 31),
    utc(2026, 4, 4),
    utc(2026, 10, 3),
    utc(2026, 9, 26),
    utc(2026, 6, 1),
    utc(2024, 3, 9),
    utc(2024, 11, 2),
]


def oracle(fields: dict[str, set[int]], zone: ZoneInfo, after: datetime, minutes: int) -> list[datetime]:
    """Every UTC minute whose wall-clock reading matches, taken once: only a wall time's first
    instant fires (a repeated hour does not fire again)."""
    found = []
    for step in range(1, minutes + 1):
        instant = after + timedelta(minutes=step)
        wall = instant.astimezone(zone)
        aws_weekday = wall.isoweekday() % 7 + 1
        day_ok = wall.day in fields["dom"] if fields["dom"] else aws_weekday in fields["dow"]
        matches = (
            wall.minute in fields["minutes"]
            and wall.hour in fields["hours"]
            and day_ok
            and wall.month in fields["months"]
        )
        first = wall.replace(tzinfo=None).replace(tzinfo=zone, fold=0).astimezone(UTC) == instant
        if matches and first:
            found.append(instant)
    return found


@st.composite
def cron_fields(draw: st.DrawFn) -> tuple[str, dict[str, set[int]]]:
    minutes = draw(st.sets(st.integers(0, 59), min_size=1, max_size=4))
    hours = draw(st.sets(st.integers(0, 23), min_size=1, max_size=6))
    months = draw(st.sets(st.integers(1, 12), min_size=1, max_size=12))
    by_weekday = draw(st.booleans())
    dom = set() if by_weekday else draw(st.sets(st.integers(1, 31), min_size=1, max_size=20))
    dow = draw(st.sets(st.integers(1, 7), min_size=1, max_size=7)) if by_weekday else set()

    def listed(values: set[int]) -> str:
        return ",".join(map(str, sorted(values)))

    expression = (
        f"cron({listed(minutes)} {listed(hours)} {listed(dom) if dom else '?'} {listed(months)} "
        f"{listed(dow) if dow else '?'} *)"
    )
    return expression, {"minutes": minutes, "hours": hours, "months": months, "dom": dom, "dow": dow}


@settings(max_examples=25, deadline=None)
@given(
    cron=cron_fields(),
    zone=st.sampled_from(ORACLE_ZONES),
    start=st.sampled_from(ORACLE_STARTS),
    offset=st.integers(0, 36 * 60),
)
def test_given_any_cron_when_asked_for_firings_then_they_match_a_minute_by_minute_scan(
    cron: tuple[str, dict[str, set[int]]], zone: str, start: datetime, offset: int
) -> None:
    expression, fields = cron
    after = start + timedelta(minutes=offset, seconds=17)
    window = 2 * 24 * 60

    expected = oracle(fields, ZoneInfo(zone), after.replace(second=0), window)
    fired = occurrences(
        expression, zone, after, MAX_OCCURRENCES, end=after.replace(second=0) + timedelta(minutes=window, seconds=1)
    )

    assert fired == [moment for moment in expected if moment > after]


# ------------------------------------------------------------------------------ at()
def test_given_a_moment_when_written_as_at_then_it_is_the_wall_time_in_that_zone_to_the_second() -> None:
    moment = utc(2026, 12, 1, 9, 0, 5) + timedelta(microseconds=900_000)

    assert at_expression(moment) == "at(2026-12-01T09:00:05)"
    assert at_expression(moment, PARIS) == "at(2026-12-01T10:00:05)"
    assert at_expression(moment, "Pacific/Kiritimati") == "at(2026-12-01T23:00:05)"


def test_given_bad_input_when_writing_at_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        at_expression(datetime(2026, 12, 1, 10))
    with pytest.raises(ScheduleError):
        at_expression(utc(2026, 12, 1), "Mars/Olympus")


@settings(max_examples=60, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    zone=st.sampled_from(["UTC", PARIS, NEW_YORK, "Pacific/Kiritimati", "Pacific/Pago_Pago", "Australia/Lord_Howe"]),
)
def test_given_any_moment_when_written_as_at_and_read_back_then_it_fires_at_that_second(
    moment: datetime, zone: str
) -> None:
    second = moment.replace(microsecond=0)
    tz = ZoneInfo(zone)
    # A moment in the second pass of a repeated hour has no at() of its own in that zone.
    first_reading = second.astimezone(tz).replace(tzinfo=None).replace(tzinfo=tz, fold=0).astimezone(UTC)
    expected = second if first_reading == second else first_reading

    expression = at_expression(moment, zone)

    assert occurrences(expression, zone, expected - timedelta(seconds=1), 1) == [expected]
    assert occurrences(at_expression(moment), "UTC", second - timedelta(seconds=1), 1) == [second]


def test_given_days_per_month_when_l_is_asked_then_it_agrees_with_the_calendar() -> None:
    fired = occurrences("cron(0 0 L * ? *)", "UTC", utc(2026, 1, 1), 12)

    assert [m.day for m in fired] == [calendar.monthrange(2026, month)[1] for month in range(1, 13)]


# ------------------------------------------------------------------------------ one parser for the local cloud
def fire_times(expression: str, after: datetime, count: int, timezone: str = "UTC") -> list[datetime]:
    schedule = read_schedule(expression, timezone)
    times: list[datetime] = []
    moment: datetime | None = after
    for _ in range(count):
        assert moment is not None
        moment = schedule.next_after(moment)
        assert moment is not None
        times.append(moment)
    return times


START = utc(2024, 5, 1, 10)


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        # SCHED-RATE: the first invocation is at the start date itself
        ("rate(5 minutes)", utc(2024, 5, 1, 9), START),
        ("rate(5 minutes)", START, utc(2024, 5, 1, 10, 5)),
        ("rate(5 minutes)", utc(2024, 5, 1, 10, 7, 30), utc(2024, 5, 1, 10, 10)),
        ("rate(5 minutes)", START + timedelta(minutes=5, microseconds=-1), utc(2024, 5, 1, 10, 5)),
        ("rate(1 minute)", utc(2024, 5, 1, 10, 0, 1), utc(2024, 5, 1, 10, 1)),
        ("rate(1 hour)", utc(2024, 5, 1, 12, 30), utc(2024, 5, 1, 13)),
        ("rate(12 hours)", utc(2024, 5, 2, 10), utc(2024, 5, 2, 22)),
        ("rate(1 day)", utc(2024, 5, 31, 10), utc(2024, 6, 1, 10)),
    ],
)
def test_given_a_rate_with_a_start_when_asked_then_it_fires_every_period_counted_from_the_start(
    expression: str, moment: datetime, expected: datetime
) -> None:
    assert read_schedule(expression, start=START).next_after(moment) == expected


def test_given_a_rate_without_a_start_when_asked_then_its_next_firing_is_one_period_on() -> None:
    # The local cloud always gives one (the StartDate, else the schedule's creation); the product
    # and the emulator read a rate without one alike: counted from the moment asked.
    assert read_schedule("rate(1 hour)").next_after(utc(2024, 5, 1, 10, 15)) == utc(2024, 5, 1, 11, 15)


def test_given_a_daily_rate_in_new_york_when_clocks_spring_forward_then_the_next_run_is_24_hours_on() -> None:
    schedule = read_schedule("rate(1 day)", NEW_YORK, start=utc(2024, 3, 9, 12))

    assert schedule.next_after(utc(2024, 3, 10, 12)) == utc(2024, 3, 11, 12)  # SCHED-RATE


def test_given_a_start_in_another_zone_when_asked_then_the_firings_are_utc_instants() -> None:
    start = datetime(2024, 1, 1, 9, tzinfo=ZoneInfo(NEW_YORK))

    next_run = read_schedule("rate(2 days)", start=start).next_after(start)

    assert next_run == utc(2024, 1, 3, 14)
    assert next_run is not None and next_run.tzinfo is UTC


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        # CRON "Examples" table, in UTC
        ("cron(0 10 * * ? *)", utc(2024, 5, 1, 9, 59), utc(2024, 5, 1, 10)),
        ("cron(0 10 * * ? *)", utc(2024, 5, 1, 10), utc(2024, 5, 2, 10)),
        ("cron(15 12 * * ? *)", utc(2024, 5, 1, 12, 15, 1), utc(2024, 5, 2, 12, 15)),
        ("cron(0 18 ? * MON-FRI *)", utc(2024, 5, 3, 18), utc(2024, 5, 6, 18)),  # Friday -> Monday
        ("cron(0 8 1 * ? *)", utc(2024, 5, 1, 8), utc(2024, 6, 1, 8)),
        ("cron(0/15 * * * ? *)", utc(2024, 5, 1, 10, 7), utc(2024, 5, 1, 10, 15)),
        ("cron(0/10 * ? * MON-FRI *)", utc(2024, 5, 4), utc(2024, 5, 6)),  # Saturday -> Monday
        ("cron(0/5 8-17 ? * MON-FRI *)", utc(2024, 5, 3, 17, 55), utc(2024, 5, 6, 8)),
        # "20-2" wraps past midnight
        ("cron(0/30 20-2 ? * MON-FRI *)", utc(2024, 5, 2, 23, 30), utc(2024, 5, 3)),
        ("cron(0/30 20-2 ? * MON-FRI *)", utc(2024, 5, 3, 2, 30), utc(2024, 5, 3, 20)),
        # CRON: "runs every day, at 2:05pm and 2:35pm"
        ("cron(5,35 14 * * ? *)", utc(2024, 5, 1, 14, 5), utc(2024, 5, 1, 14, 35)),
        # CRON: "10:15am on the last Friday of each month during the years 2019 to 2022"
        ("cron(15 10 ? * 6L 2019-2022)", utc(2019, 1, 1), utc(2019, 1, 25, 10, 15)),
        ("cron(15 10 ? * 6L 2019-2022)", utc(2022, 11, 25, 10, 15), utc(2022, 12, 30, 10, 15)),
        # months JAN-DEC and weekdays SUN-SAT, in any case
        ("cron(0 12 ? JAN-MAR SUN *)", utc(2024, 3, 31, 12), utc(2025, 1, 5, 12)),
        ("cron(0 12 ? jan-mar sun *)", utc(2024, 3, 31, 12), utc(2025, 1, 5, 12)),
        ("cron(0 12 1 NOV-FEB ? *)", utc(2024, 2, 1, 12), utc(2024, 11, 1, 12)),
        # "/" is an increment starting at the value before it
        ("cron(10-40/15 * * * ? *)", utc(2024, 5, 1, 10, 11), utc(2024, 5, 1, 10, 25)),
        ("cron(10-40/15 * * * ? *)", utc(2024, 5, 1, 10, 40), utc(2024, 5, 1, 11, 10)),
        ("cron(*/20 * * * ? *)", utc(2024, 5, 1, 10, 41), utc(2024, 5, 1, 11)),
        ("cron(0 0 1 1 ? 2030/10)", utc(2024, 1, 1), utc(2030, 1, 1)),
        ("cron(0 0 1 1 ? 2030/10)", utc(2030, 1, 1), utc(2040, 1, 1)),
        # February 29th only in leap years: 2100 is not one (divisible by 100, not by 400), 2000 was
        ("cron(0 0 29 2 ? *)", utc(2025, 1, 1), utc(2028, 2, 29)),
        ("cron(0 0 29 2 ? *)", utc(2024, 2, 29), utc(2028, 2, 29)),
        ("cron(0 0 29 2 ? *)", utc(2097, 3, 1), utc(2104, 2, 29)),
        ("cron(0 0 29 2 ? *)", utc(1997, 3, 1), utc(2000, 2, 29)),
        # far ahead, found without scanning minute by minute
        ("cron(0 0 29 2 ? 2196)", utc(2024, 1, 1), utc(2196, 2, 29)),
    ],
)
def test_given_a_cron_when_asked_then_it_fires_at_the_next_matching_minute(
    expression: str, moment: datetime, expected: datetime
) -> None:
    assert read_schedule(expression).next_after(moment) == expected


@pytest.mark.parametrize(
    ("expression", "after"),
    [
        ("cron(15 10 ? * 6L 2019-2022)", utc(2022, 12, 30, 10, 15)),
        ("cron(0 0 1 1 ? 2020)", utc(2021, 1, 1)),
        ("cron(0 0 1 1 ? 2030/10)", utc(2190, 1, 1)),  # 2200 is past the last year cron allows
    ],
)
def test_given_a_cron_past_its_last_year_when_asked_then_it_fires_no_more(expression: str, after: datetime) -> None:
    assert read_schedule(expression).next_after(after) is None


@pytest.mark.parametrize(
    ("expression", "after", "expected_days"),
    [
        ("cron(0 0 L * ? *)", utc(2024, 1, 31), ["2024-02-29", "2024-03-31", "2024-04-30"]),
        # "LW": Aug 31 2024 is a Saturday, Mar 31 2024 a Sunday
        ("cron(0 0 LW * ? *)", utc(2024, 2, 29), ["2024-03-29", "2024-04-30", "2024-05-31"]),
        ("cron(0 0 LW * ? *)", utc(2024, 8, 1), ["2024-08-30", "2024-09-30", "2024-10-31"]),
        # "W": Jun 15 2024 is a Saturday, Sep 15 2024 a Sunday
        ("cron(0 0 15W * ? *)", utc(2024, 6, 1), ["2024-06-14", "2024-07-15", "2024-08-15"]),
        ("cron(0 0 15W * ? *)", utc(2024, 9, 1), ["2024-09-16", "2024-10-15", "2024-11-15"]),
        ("cron(0 0 1W * ? *)", utc(2024, 5, 31), ["2024-06-03", "2024-07-01", "2024-08-01"]),
        ("cron(0 0 31W * ? *)", utc(2024, 3, 1), ["2024-03-29", "2024-05-31", "2024-07-31"]),
        # "3#2" is the second Tuesday; a month without a fifth Friday is skipped
        ("cron(0 0 ? * 3#2 *)", utc(2024, 6, 1), ["2024-06-11", "2024-07-09", "2024-08-13"]),
        ("cron(0 0 ? * 6#5 *)", utc(2024, 6, 1), ["2024-08-30", "2024-11-29", "2025-01-31"]),
        ("cron(0 0 ? * FRI#5 *)", utc(2024, 6, 1), ["2024-08-30", "2024-11-29", "2025-01-31"]),
        ("cron(0 0 ? * 2L *)", utc(2024, 5, 1), ["2024-05-27", "2024-06-24", "2024-07-29"]),
        ("cron(0 0 ? * L *)", utc(2024, 6, 3), ["2024-06-08", "2024-06-15", "2024-06-22"]),
        # day-of-week is numbered 1=SUN..7=SAT, and ranges of names wrap around the week
        ("cron(0 0 ? * 1 *)", utc(2024, 6, 3), ["2024-06-09", "2024-06-16", "2024-06-23"]),
        ("cron(0 0 ? * 7 *)", utc(2024, 6, 3), ["2024-06-08", "2024-06-15", "2024-06-22"]),
        ("cron(0 0 ? * FRI-MON *)", utc(2024, 6, 4), ["2024-06-07", "2024-06-08", "2024-06-09"]),
        ("cron(0 0 1,15 * ? *)", utc(2024, 6, 1), ["2024-06-15", "2024-07-01", "2024-07-15"]),
        ("cron(0 0 10-12 * ? *)", utc(2024, 6, 11), ["2024-06-12", "2024-07-10", "2024-07-11"]),
        ("cron(0 0 1/10 * ? *)", utc(2024, 6, 1), ["2024-06-11", "2024-06-21", "2024-07-01"]),
    ],
)
def test_given_cron_day_fields_when_asked_then_they_select_the_documented_days(
    expression: str, after: datetime, expected_days: list[str]
) -> None:
    days = [moment.date().isoformat() for moment in fire_times(expression, after, len(expected_days))]

    assert days == expected_days


def test_given_a_cron_with_a_start_date_when_asked_before_it_then_it_fires_from_the_start_on() -> None:
    assert read_schedule("cron(0 10 * * ? *)", start=utc(2024, 5, 3, 12)).next_after(utc(2024, 5, 1)) == utc(
        2024, 5, 4, 10
    )
    assert read_schedule("cron(0 10 * * ? *)", start=utc(2024, 5, 3, 10)).next_after(utc(2024, 5, 1)) == utc(
        2024, 5, 3, 10
    )


def test_given_a_cron_in_new_york_when_clocks_change_then_it_keeps_its_wall_clock_times() -> None:
    # 09:00 moves from 14:00Z to 13:00Z when clocks spring forward
    assert fire_times("cron(0 9 * * ? *)", utc(2024, 3, 8, 15), 3, NEW_YORK) == [
        utc(2024, 3, 9, 14),
        utc(2024, 3, 10, 13),
        utc(2024, 3, 11, 13),
    ]
    # SCHED-DST: March 10 has no 02:30, and that day's invocation is skipped
    assert fire_times("cron(30 2 * * ? *)", utc(2024, 3, 9), 2, NEW_YORK) == [
        utc(2024, 3, 9, 7, 30),
        utc(2024, 3, 11, 6, 30),
    ]
    # 01:00 EST is 06:00Z; the next wall-clock hour that exists is 03:00 EDT, 07:00Z
    assert read_schedule("cron(0 * * * ? *)", NEW_YORK).next_after(utc(2024, 3, 10, 6)) == utc(2024, 3, 10, 7)
    # SCHED-DST: a repeated 01:30 runs once, at its first instant (EDT)
    assert fire_times("cron(30 1 * * ? *)", utc(2024, 11, 3), 2, NEW_YORK) == [
        utc(2024, 11, 3, 5, 30),
        utc(2024, 11, 4, 6, 30),
    ]
    for moment in (utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 15)):  # before, and inside, the repeated hour
        assert read_schedule("cron(0/30 * * * ? *)", NEW_YORK).next_after(moment) == utc(2024, 11, 3, 7)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2024, 1, 1), utc(2024, 7, 1, 13)),
        (utc(2024, 7, 1, 12, 59, 59), utc(2024, 7, 1, 13)),
        (utc(2024, 7, 1, 13), None),
        (utc(2025, 1, 1), None),
    ],
)
def test_given_an_at_schedule_when_asked_then_it_fires_once_at_its_wall_clock_time(
    moment: datetime, expected: datetime | None
) -> None:
    # SCHED-AT: 09:00 EDT is 13:00Z
    assert read_schedule("at(2024-07-01T09:00:00)", NEW_YORK).next_after(moment) == expected


def test_given_at_schedules_when_read_then_their_instant_is_known_and_the_start_does_not_move_it() -> None:
    assert read_schedule("at(2024-01-01T00:00:00)", "Asia/Tokyo").once_at == utc(2023, 12, 31, 15)
    # Not documented by AWS: a time the clocks skip is read with the offset before the change
    assert read_schedule("at(2024-03-10T02:30:00)", NEW_YORK).next_after(utc(2024, 3, 1)) == utc(2024, 3, 10, 7, 30)
    later_start = read_schedule("at(2024-07-01T09:00:00)", start=utc(2024, 8, 1))
    assert later_start.next_after(utc(2024, 1, 1)) == utc(2024, 7, 1, 9)
    assert read_schedule("rate(1 day)").once_at is None
    assert read_schedule("cron(0 9 * * ? *)").once_at is None


@pytest.mark.parametrize("expression", ["rate(5 minutes)", "cron(0 9 * * ? *)", "at(2030-07-01T09:00:00)"])
def test_given_any_schedule_when_asked_in_another_zone_then_it_answers_in_utc_and_keeps_its_expression(
    expression: str,
) -> None:
    schedule = read_schedule(expression, NEW_YORK)

    next_run = schedule.next_after(datetime(2024, 7, 1, 12, tzinfo=ZoneInfo(PARIS)))

    assert next_run is not None and next_run.tzinfo is UTC
    assert isinstance(schedule, Schedule) and schedule.expression == expression


def test_given_naive_times_when_reading_a_schedule_then_they_are_refused() -> None:
    with pytest.raises(ValueError, match="after must be timezone-aware"):
        read_schedule("cron(0 9 * * ? *)").next_after(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        read_schedule("rate(5 minutes)", start=datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("expression", "timezone", "why"),
    [
        ("cron(0/60 * * * ? *)", "UTC", "increment that is not a whole number from 1 to 59"),
        ("cron(0 10 ? * MON/2 *)", "UTC", "uses '/', which this field does not take"),
        ("cron(0 0 30 2 ? *)", "UTC", "never fires"),
        ("cron(0 10 ? * 8#1 *)", "UTC", "day-of-week field: '8' is out of range 1-7"),
        ("cron(0 10 32W * ? *)", "UTC", "day-of-month field: '32' is out of range 1-31"),
        ("rate(1 day)", "Europe", "not an IANA time zone"),
        ("rate(1 day)", "localtime", "not an IANA time zone"),
        ("rate(1 day)", "Mars/Olympus", "not an IANA time zone"),
    ],
)
def test_given_what_scheduler_refuses_when_read_as_a_schedule_then_schedule_error_says_why(
    expression: str, timezone: str, why: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        read_schedule(expression, timezone)

    assert why in messages(caught.value.issues)
