"""Schedule expressions, checked against the EventBridge and EventBridge Scheduler user guides.

Sections cited: EventBridge "Creating a rule that runs on a schedule" - "Cron expressions" (CRON)
and "Rate expressions" (RATE); EventBridge Scheduler "Schedule types" - "Rate-based schedules"
(SCHED-RATE), "One-time schedules" (SCHED-AT) and "Daylight savings time" (SCHED-DST).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.localcloud.schedule_expressions import InvalidScheduleExpression, parse_schedule

NEW_YORK = "America/New_York"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fire_times(expression: str, after: datetime, count: int, timezone: str = "UTC") -> list[datetime]:
    schedule = parse_schedule(expression, timezone)
    times: list[datetime] = []
    moment: datetime | None = after
    for _ in range(count):
        assert moment is not None
        moment = schedule.next_after(moment)
        assert moment is not None
        times.append(moment)
    return times


# --- rate ----------------------------------------------------------------------------------------

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
def test_rate_fires_every_period_counted_from_the_start(expression: str, moment: datetime, expected: datetime) -> None:
    assert parse_schedule(expression, start=START).next_after(moment) == expected


def test_rate_without_a_start_is_aligned_on_the_epoch() -> None:
    assert parse_schedule("rate(1 hour)").next_after(utc(2024, 5, 1, 10, 15)) == utc(2024, 5, 1, 11)


def test_rate_days_are_24_hours_even_across_a_daylight_saving_change() -> None:
    # Given a daily rate started at noon UTC (07:00 in New York) the day before clocks spring forward
    schedule = parse_schedule("rate(1 day)", NEW_YORK, start=utc(2024, 3, 9, 12))
    # When the next run after the change is computed
    after_change = schedule.next_after(utc(2024, 3, 10, 12))
    # Then it is 24 hours later (SCHED-RATE), not at the same wall-clock time
    assert after_change == utc(2024, 3, 11, 12)


def test_rate_start_in_another_zone_yields_utc_instants() -> None:
    start = datetime(2024, 1, 1, 9, tzinfo=ZoneInfo(NEW_YORK))
    next_run = parse_schedule("rate(2 days)", start=start).next_after(start)
    assert next_run == utc(2024, 1, 3, 14)
    assert next_run is not None
    assert next_run.tzinfo is UTC


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        # RATE: a value of 1 takes the singular unit and values over 1 the plural
        ("rate(1 minutes)", "rate(1 minutes) must use the singular unit: rate(1 minute)"),
        ("rate(1 hours)", "rate(1 hours) must use the singular unit: rate(1 hour)"),
        ("rate(5 minute)", "rate(5 minute) must use the plural unit: rate(5 minutes)"),
        ("rate(5 hour)", "rate(5 hour) must use the plural unit: rate(5 hours)"),
        # RATE: the value is a positive number
        ("rate(0 minutes)", "rate value '0' must be a positive whole number"),
        ("rate(-5 minutes)", "rate value '-5' must be a positive whole number"),
        ("rate(1.5 hours)", "rate value '1.5' must be a positive whole number"),
        ("rate(5 weeks)", "rate unit 'weeks' must be one of minute(s), hour(s), day(s)"),
        ("rate(5minutes)", "rate(5minutes) must be a value and a unit separated by one space, e.g. rate(5 minutes)"),
        ("rate(5 minutes", "'rate(5 minutes' is not a schedule expression; expected rate(...), cron(...) or at(...)"),
    ],
)
def test_invalid_rate_expressions_are_rejected(expression: str, message: str) -> None:
    with pytest.raises(InvalidScheduleExpression) as raised:
        parse_schedule(expression)
    assert str(raised.value) == message


# --- cron ----------------------------------------------------------------------------------------


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
    ],
)
def test_cron_fires_at_the_next_matching_minute(expression: str, moment: datetime, expected: datetime) -> None:
    assert parse_schedule(expression).next_after(moment) == expected


def test_cron_stops_after_its_last_year() -> None:
    assert parse_schedule("cron(15 10 ? * 6L 2019-2022)").next_after(utc(2022, 12, 30, 10, 15)) is None


@pytest.mark.parametrize(
    ("expression", "after", "expected_days"),
    [
        # CRON: "L" in day-of-month is the month's last day
        ("cron(0 0 L * ? *)", utc(2024, 1, 31), ["2024-02-29", "2024-03-31", "2024-04-30"]),
        # "LW" is the month's last weekday: Aug 31 2024 is a Saturday, Mar 31 2024 a Sunday
        ("cron(0 0 LW * ? *)", utc(2024, 2, 29), ["2024-03-29", "2024-04-30", "2024-05-31"]),
        ("cron(0 0 LW * ? *)", utc(2024, 8, 1), ["2024-08-30", "2024-09-30", "2024-10-31"]),
        # CRON: "W" is the weekday nearest the day: Jun 15 2024 is a Saturday, Sep 15 2024 a Sunday
        ("cron(0 0 15W * ? *)", utc(2024, 6, 1), ["2024-06-14", "2024-07-15", "2024-08-15"]),
        ("cron(0 0 15W * ? *)", utc(2024, 9, 1), ["2024-09-16", "2024-10-15", "2024-11-15"]),
        # W does not leave the month: Jun 1 2024 is a Saturday, so Monday the 3rd
        ("cron(0 0 1W * ? *)", utc(2024, 5, 31), ["2024-06-03", "2024-07-01", "2024-08-01"]),
        # 31W skips 30-day months; Mar 31 2024 is a Sunday, so Friday the 29th
        ("cron(0 0 31W * ? *)", utc(2024, 3, 1), ["2024-03-29", "2024-05-31", "2024-07-31"]),
        # CRON: "3#2" is the second Tuesday of the month
        ("cron(0 0 ? * 3#2 *)", utc(2024, 6, 1), ["2024-06-11", "2024-07-09", "2024-08-13"]),
        # a month without a fifth Friday is skipped
        ("cron(0 0 ? * 6#5 *)", utc(2024, 6, 1), ["2024-08-30", "2024-11-29", "2025-01-31"]),
        ("cron(0 0 ? * FRI#5 *)", utc(2024, 6, 1), ["2024-08-30", "2024-11-29", "2025-01-31"]),
        # "2L" is the last Monday
        ("cron(0 0 ? * 2L *)", utc(2024, 5, 1), ["2024-05-27", "2024-06-24", "2024-07-29"]),
        # "L" alone in day-of-week is the last day of the week: every Saturday
        ("cron(0 0 ? * L *)", utc(2024, 6, 3), ["2024-06-08", "2024-06-15", "2024-06-22"]),
        # day-of-week is numbered 1=SUN..7=SAT
        ("cron(0 0 ? * 1 *)", utc(2024, 6, 3), ["2024-06-09", "2024-06-16", "2024-06-23"]),
        ("cron(0 0 ? * 7 *)", utc(2024, 6, 3), ["2024-06-08", "2024-06-15", "2024-06-22"]),
        # ranges of weekday names wrap around the week
        ("cron(0 0 ? * FRI-MON *)", utc(2024, 6, 4), ["2024-06-07", "2024-06-08", "2024-06-09"]),
        ("cron(0 0 1,15 * ? *)", utc(2024, 6, 1), ["2024-06-15", "2024-07-01", "2024-07-15"]),
        ("cron(0 0 10-12 * ? *)", utc(2024, 6, 11), ["2024-06-12", "2024-07-10", "2024-07-11"]),
        ("cron(0 0 1/10 * ? *)", utc(2024, 6, 1), ["2024-06-11", "2024-06-21", "2024-07-01"]),
    ],
)
def test_cron_day_fields_select_the_documented_days(expression: str, after: datetime, expected_days: list[str]) -> None:
    days = [moment.date().isoformat() for moment in fire_times(expression, after, len(expected_days))]
    assert days == expected_days


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # CRON: months may be written JAN-DEC and weekdays SUN-SAT, in any case
        ("cron(0 12 ? JAN-MAR SUN *)", utc(2024, 3, 31, 12), utc(2025, 1, 5, 12)),
        ("cron(0 12 ? jan-mar sun *)", utc(2024, 3, 31, 12), utc(2025, 1, 5, 12)),
        ("cron(0 12 1 NOV-FEB ? *)", utc(2024, 2, 1, 12), utc(2024, 11, 1, 12)),
        # CRON: "/" is an increment starting at the value before it
        ("cron(10-40/15 * * * ? *)", utc(2024, 5, 1, 10, 11), utc(2024, 5, 1, 10, 25)),
        ("cron(10-40/15 * * * ? *)", utc(2024, 5, 1, 10, 40), utc(2024, 5, 1, 11, 10)),
        ("cron(*/20 * * * ? *)", utc(2024, 5, 1, 10, 41), utc(2024, 5, 1, 11)),
        ("cron(0 0 1 1 ? 2030/10)", utc(2024, 1, 1), utc(2030, 1, 1)),
        ("cron(0 0 1 1 ? 2030/10)", utc(2030, 1, 1), utc(2040, 1, 1)),
    ],
)
def test_cron_names_and_steps(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(expression).next_after(after) == expected


@pytest.mark.parametrize(
    ("expression", "after"),
    [
        ("cron(0 0 1 1 ? 2020)", utc(2021, 1, 1)),
        ("cron(0 0 1 1 ? 2030/10)", utc(2190, 1, 1)),  # 2200 is past the last year cron allows
        ("cron(0 0 30 2 ? *)", utc(2024, 1, 1)),  # February never has a 30th
    ],
)
def test_cron_that_cannot_fire_again_returns_none(expression: str, after: datetime) -> None:
    assert parse_schedule(expression).next_after(after) is None


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (utc(2025, 1, 1), utc(2028, 2, 29)),
        (utc(2024, 2, 29), utc(2028, 2, 29)),
        # 2100 is not a leap year (divisible by 100, not by 400), 2000 was
        (utc(2097, 3, 1), utc(2104, 2, 29)),
        (utc(1997, 3, 1), utc(2000, 2, 29)),
    ],
)
def test_cron_on_february_29_fires_only_in_leap_years(after: datetime, expected: datetime) -> None:
    assert parse_schedule("cron(0 0 29 2 ? *)").next_after(after) == expected


def test_cron_far_in_the_future_is_found_without_scanning_minutes() -> None:
    assert parse_schedule("cron(0 0 29 2 ? 2196)").next_after(utc(2024, 1, 1)) == utc(2196, 2, 29)


def test_cron_does_not_fire_before_the_start_date() -> None:
    schedule = parse_schedule("cron(0 10 * * ? *)", start=utc(2024, 5, 3, 12))
    assert schedule.next_after(utc(2024, 5, 1)) == utc(2024, 5, 4, 10)


def test_cron_may_fire_at_the_start_date_itself() -> None:
    schedule = parse_schedule("cron(0 10 * * ? *)", start=utc(2024, 5, 3, 10))
    assert schedule.next_after(utc(2024, 5, 1)) == utc(2024, 5, 3, 10)


# --- time zones and daylight-saving time (America/New_York: 2024-03-10 02:00 EST -> 03:00 EDT,
# --- 2024-11-03 02:00 EDT -> 01:00 EST) --------------------------------------------------------


def test_cron_runs_on_the_wall_clock_of_its_time_zone() -> None:
    # Given 09:00 every day in New York, When clocks spring forward, Then 09:00 moves from 14:00Z to 13:00Z
    assert fire_times("cron(0 9 * * ? *)", utc(2024, 3, 8, 15), 3, NEW_YORK) == [
        utc(2024, 3, 9, 14),
        utc(2024, 3, 10, 13),
        utc(2024, 3, 11, 13),
    ]


def test_cron_time_that_does_not_exist_on_spring_forward_day_is_skipped() -> None:
    # SCHED-DST: when the time shifts forward, an invocation on a non-existent time is skipped
    assert fire_times("cron(30 2 * * ? *)", utc(2024, 3, 9), 2, NEW_YORK) == [
        utc(2024, 3, 9, 7, 30),  # 02:30 EST
        utc(2024, 3, 11, 6, 30),  # 02:30 EDT; March 10 has no 02:30
    ]


def test_hourly_cron_skips_the_missing_hour_on_spring_forward_day() -> None:
    # 01:00 EST is 06:00Z and the next wall-clock hour that exists is 03:00 EDT, 07:00Z
    assert parse_schedule("cron(0 * * * ? *)", NEW_YORK).next_after(utc(2024, 3, 10, 6)) == utc(2024, 3, 10, 7)


def test_cron_time_repeated_on_fall_back_day_fires_once() -> None:
    # SCHED-DST: when the time shifts back, the schedule runs only once (here at 01:30 EDT, 05:30Z)
    assert fire_times("cron(30 1 * * ? *)", utc(2024, 11, 3), 2, NEW_YORK) == [
        utc(2024, 11, 3, 5, 30),
        utc(2024, 11, 4, 6, 30),  # not 06:30Z on Nov 3, the repeated 01:30 EST
    ]


@pytest.mark.parametrize(
    "moment",
    [
        utc(2024, 11, 3, 5, 30),  # 01:30 EDT, the last run before the repeat
        utc(2024, 11, 3, 6, 15),  # 01:15 EST, inside the repeated hour
    ],
)
def test_frequent_cron_does_not_rerun_the_repeated_hour(moment: datetime) -> None:
    assert parse_schedule("cron(0/30 * * * ? *)", NEW_YORK).next_after(moment) == utc(2024, 11, 3, 7)


MINUTES = st.sets(st.integers(0, 59), min_size=1, max_size=4)
HOURS = st.sets(st.integers(0, 23), min_size=1, max_size=4)
WEEKDAYS = st.sets(st.integers(1, 7), min_size=1, max_size=7)
# Moments within two days of the 2024 New York clock changes.
AROUND_CHANGES = st.sampled_from([utc(2024, 3, 8, 12), utc(2024, 11, 1, 12)]).flatmap(
    lambda base: st.integers(0, 4 * 24 * 60).map(lambda minutes: base + timedelta(minutes=minutes, seconds=17))
)


def next_fire_by_brute_force(
    minutes: set[int], hours: set[int], weekdays: set[int], moment: datetime, zone: ZoneInfo
) -> datetime:
    """Walk UTC minute by minute; a repeated wall time (fold=1) is a second pass, not a fire time."""
    candidate = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while True:
        local = candidate.astimezone(zone)
        aws_weekday = local.isoweekday() % 7 + 1
        if not local.fold and local.minute in minutes and local.hour in hours and aws_weekday in weekdays:
            return candidate
        candidate += timedelta(minutes=1)


@settings(max_examples=60, deadline=None)
@given(minutes=MINUTES, hours=HOURS, weekdays=WEEKDAYS, moment=AROUND_CHANGES)
def test_cron_agrees_with_a_minute_by_minute_walk_across_clock_changes(
    minutes: set[int], hours: set[int], weekdays: set[int], moment: datetime
) -> None:
    # Given a cron with arbitrary minutes, hours and weekdays in New York
    def listed(values: set[int]) -> str:
        return ",".join(map(str, sorted(values)))

    expression = f"cron({listed(minutes)} {listed(hours)} ? * {listed(weekdays)} *)"
    # When its next fire time is computed, Then it is the first matching minute a clock would show
    expected = next_fire_by_brute_force(minutes, hours, weekdays, moment, ZoneInfo(NEW_YORK))
    assert parse_schedule(expression, NEW_YORK).next_after(moment) == expected


# --- at ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2024, 1, 1), utc(2024, 7, 1, 13)),
        (utc(2024, 7, 1, 12, 59, 59), utc(2024, 7, 1, 13)),
        (utc(2024, 7, 1, 13), None),
        (utc(2025, 1, 1), None),
    ],
)
def test_at_fires_once_at_its_wall_clock_time(moment: datetime, expected: datetime | None) -> None:
    # SCHED-AT: a one-time schedule in a time zone; 09:00 EDT is 13:00Z
    assert parse_schedule("at(2024-07-01T09:00:00)", NEW_YORK).next_after(moment) == expected


def test_at_in_a_zone_east_of_utc_fires_the_day_before_in_utc() -> None:
    schedule = parse_schedule("at(2024-01-01T00:00:00)", "Asia/Tokyo")
    assert schedule.next_after(utc(2023, 12, 1)) == utc(2023, 12, 31, 15)


def test_at_on_a_time_skipped_by_spring_forward_fires_an_hour_later_on_the_wall_clock() -> None:
    # Not documented by AWS; read with the pre-change offset: 02:30 EST is 07:30Z, i.e. 03:30 EDT
    schedule = parse_schedule("at(2024-03-10T02:30:00)", NEW_YORK)
    assert schedule.next_after(utc(2024, 3, 1)) == utc(2024, 3, 10, 7, 30)


def test_at_ignores_the_start_date() -> None:
    schedule = parse_schedule("at(2024-07-01T09:00:00)", start=utc(2024, 8, 1))
    assert schedule.next_after(utc(2024, 1, 1)) == utc(2024, 7, 1, 9)


# --- contract ------------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", ["rate(5 minutes)", "cron(0 9 * * ? *)", "at(2030-07-01T09:00:00)"])
def test_next_after_returns_aware_utc_and_keeps_the_expression(expression: str) -> None:
    schedule = parse_schedule(expression, NEW_YORK)
    next_run = schedule.next_after(datetime(2024, 7, 1, 12, tzinfo=ZoneInfo("Europe/Paris")))
    assert next_run is not None
    assert next_run.tzinfo is UTC
    assert schedule.expression == expression


def test_next_after_refuses_a_naive_moment() -> None:
    with pytest.raises(ValueError, match="moment must be a timezone-aware datetime"):
        parse_schedule("cron(0 9 * * ? *)").next_after(datetime(2024, 1, 1))


def test_parse_refuses_a_naive_start() -> None:
    with pytest.raises(ValueError, match="start must be a timezone-aware datetime"):
        parse_schedule("rate(5 minutes)", start=datetime(2024, 1, 1))


# --- invalid expressions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "cron(0 10 * * ?)",
            "cron expressions have 6 fields (minutes hours day-of-month month day-of-week year), "
            "got 5 in 'cron(0 10 * * ?)'",
        ),
        (
            "cron(0 10 * * ? * *)",
            "cron expressions have 6 fields (minutes hours day-of-month month day-of-week year), "
            "got 7 in 'cron(0 10 * * ? * *)'",
        ),
        # CRON limitations: one of day-of-month and day-of-week must be "?"
        (
            "cron(0 10 * * * *)",
            "cron fields 'day-of-month' and 'day-of-week': exactly one of them must be '?', got '*' and '*'",
        ),
        (
            "cron(0 10 ? * ? *)",
            "cron fields 'day-of-month' and 'day-of-week': exactly one of them must be '?', got '?' and '?'",
        ),
        ("cron(0 10 ? * 8 *)", "cron field 'day-of-week': '8' is out of range 1-7"),
        ("cron(0 10 ? * 0 *)", "cron field 'day-of-week': '0' is out of range 1-7"),
        ("cron(60 10 * * ? *)", "cron field 'minutes': '60' is out of range 0-59"),
        ("cron(0 24 * * ? *)", "cron field 'hours': '24' is out of range 0-23"),
        ("cron(0 10 32 * ? *)", "cron field 'day-of-month': '32' is out of range 1-31"),
        ("cron(0 10 0 * ? *)", "cron field 'day-of-month': '0' is out of range 1-31"),
        ("cron(0 10 * 13 ? *)", "cron field 'month': '13' is out of range 1-12"),
        ("cron(0 10 * FOO ? *)", "cron field 'month': 'FOO' is not a number or a name"),
        ("cron(0 10 ? * MON-FUN *)", "cron field 'day-of-week': 'FUN' is not a number or a name"),
        ("cron(? 10 * * ? *)", "cron field 'minutes': '?' is not a number"),
        ("cron(0 10 * * ? 1969)", "cron field 'year': '1969' is out of range 1970-2199"),
        ("cron(0 10 * * ? 2200)", "cron field 'year': '2200' is out of range 1970-2199"),
        ("cron(0 10 * * ? 2030-2020)", "cron field 'year': '2030-2020' is a range whose start is after its end"),
        ("cron(0/0 * * * ? *)", "cron field 'minutes': '0' is not a valid increment (1-60)"),
        ("cron(1,,2 10 * * ? *)", "cron field 'minutes': '' is an empty list item"),
        ("cron(0 10 ? * 3#6 *)", "cron field 'day-of-week': '6' is out of range 1-5 for the occurrence after '#'"),
        ("cron(0 10 ? * 8#1 *)", "cron field 'day-of-week': '8' is out of range 1-7"),
        # CRON: with '#' the day-of-week field holds a single expression
        (
            "cron(0 10 ? * 3#1,6#3 *)",
            "cron field 'day-of-week': '3#1,6#3' is not valid: <day>L and <day>#<n> must be the whole field",
        ),
        (
            "cron(0 10 L,15 * ? *)",
            "cron field 'day-of-month': 'L,15' is not valid: L, LW and <day>W must be the whole field",
        ),
        ("cron(0 10 32W * ? *)", "cron field 'day-of-month': '32' is out of range 1-31"),
        ("every 5 minutes", "'every 5 minutes' is not a schedule expression; expected rate(...), cron(...) or at(...)"),
        (
            "at(2024-02-30T00:00:00)",
            "at(2024-02-30T00:00:00) is not a valid date and time: day is out of range for month",
        ),
        ("at(2024-02-01 00:00:00)", "at(2024-02-01 00:00:00) must look like at(yyyy-mm-ddThh:mm:ss)"),
    ],
)
def test_invalid_expressions_name_the_field_and_the_bad_token(expression: str, message: str) -> None:
    with pytest.raises(InvalidScheduleExpression) as raised:
        parse_schedule(expression)
    assert str(raised.value) == message


def test_an_unknown_time_zone_is_rejected() -> None:
    with pytest.raises(InvalidScheduleExpression, match=r"^unknown time zone 'Mars/Olympus'$"):
        parse_schedule("cron(0 9 * * ? *)", "Mars/Olympus")
