# ruff: noqa: S608 -- these modules build SQL by design; every value enters through sql.text() or as a number
"""The reports: each a validated request model and the one SQL statement that answers it.

The SQL is DuckDB's dialect (see `sql.py` for the rules that keep it translatable); `dialects`
turns it into Trino for Athena. Every builder returns a `Query` that also names the kinds and days
it reads, which is what freshness and bytes scanned are measured over.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from midstage.logic.analytics.sql import (
    DAY_MS,
    epoch_ms,
    period_start,
    prop,
    source,
    text,
    texts,
    ts,
    within,
)
from midstage.models.archive import MESSAGE_KINDS

MAX_SPAN_DAYS = 400
# A property, or a path into nested ones: dot-separated names, none empty (`a..b` or a trailing dot
# is not a JSON path DuckDB accepts, and `..` would descend recursively).
_PROPERTY = r"^[A-Za-z0-9_$][A-Za-z0-9_$-]*(\.[A-Za-z0-9_$-]+)*$"
_PROPERTY_LENGTH = 64
Unit = Literal["day", "week", "month"]
EventName = Annotated[str, Field(min_length=1, max_length=256)]
Scalar = str | int | float | bool


@dataclass(frozen=True)
class Query:
    report: str
    sql: str  # DuckDB dialect
    kinds: tuple[str, ...]
    start: date  # the first partition day read
    end: date  # the last


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: date
    end: date = Field(description="inclusive")

    @model_validator(mode="after")
    def _span(self) -> _Spec:
        if self.end < self.start:
            raise ValueError("end is before start")
        if (self.end - self.start).days > MAX_SPAN_DAYS:
            raise ValueError(f"a report covers at most {MAX_SPAN_DAYS} days")
        return self


# ------------------------------------------------------------------------------ funnels
class FunnelStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event: EventName
    where: dict[Annotated[str, Field(pattern=_PROPERTY, max_length=_PROPERTY_LENGTH)], Scalar] = Field(
        default_factory=dict, max_length=5, description="property equals value"
    )


class FunnelSpec(_Spec):
    report: Literal["funnel"] = "funnel"
    steps: list[FunnelStep] = Field(min_length=2, max_length=10)
    mode: Literal["ordered", "strict", "any_order"] = "ordered"
    window_days: int = Field(default=14, ge=1, le=365, description="per step; any_order: for all steps together")
    breakdown: str | None = Field(
        default=None, pattern=_PROPERTY, max_length=_PROPERTY_LENGTH, description="a property of the first step's event"
    )


def _step_filter(step: FunnelStep) -> str:
    terms = [f"event = {text(step.event)}"]
    for name, value in sorted(step.where.items()):
        literal = ("true" if value else "false") if isinstance(value, bool) else str(value)
        terms.append(f"{prop(name)} = {text(literal)}")
    return " AND ".join(terms)


def funnel(spec: FunnelSpec) -> Query:
    window = spec.window_days * DAY_MS
    n = len(spec.steps)
    strict = spec.mode == "strict"
    names = sorted({s.event for s in spec.steps})
    kinds = (
        "event_type IN ('track', 'page', 'screen')" if strict else f"event_type = 'track' AND event IN ({texts(names)})"
    )
    ctes = [
        f"ev AS (SELECT profile_id AS person, event, properties, {ts()} AS ts, "
        f"ROW_NUMBER() OVER (PARTITION BY profile_id ORDER BY {ts()}, record_id) AS rn "
        f"FROM archive WHERE kind = 'event' AND dt BETWEEN {text(spec.start.isoformat())} "
        f"AND {text(spec.end.isoformat())} AND {kinds} AND {within(spec.start, spec.end)})",
        "st AS ("
        + " UNION ALL ".join(
            f"SELECT person, ts, rn, {k} AS step, properties FROM ev WHERE {_step_filter(s)}"
            for k, s in enumerate(spec.steps, 1)
        )
        + ")",
    ]
    if spec.mode == "any_order":
        nexts = ", ".join(
            f"MIN(CASE WHEN step = {k} THEN ts END) OVER (PARTITION BY person ORDER BY ts "
            f"RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS n{k}"
            for k in range(1, n + 1)
        )
        reached = " + ".join(f"CASE WHEN n{k} - ts <= {window} THEN 1 ELSE 0 END" for k in range(1, n + 1))
        last = "GREATEST(" + ", ".join(f"n{k}" for k in range(1, n + 1)) + ")"
        ctes += [
            f"anchors AS (SELECT person, ts, {nexts} FROM st)",
            f"counted AS (SELECT person, ts, {reached} AS depth, {last} - ts AS span FROM anchors)",
            f"best AS (SELECT person, MAX(depth) AS depth, MIN(CASE WHEN depth = {n} THEN span END) AS took "
            "FROM counted GROUP BY person)",
            "reach AS ("
            + " UNION ALL ".join(
                f"SELECT {k} AS step, person, {'took' if k == n else 'CAST(NULL AS BIGINT)'} AS took "
                f"FROM best WHERE depth >= {k}"
                for k in range(1, n + 1)
            )
            + ")",
        ]
        first_rows = "st"
    else:
        ctes.append("r1 AS (SELECT person, ts, rn, ts AS start FROM st WHERE step = 1)")
        for k in range(2, n + 1):
            if strict:
                ctes.append(
                    f"r{k} AS (SELECT c.person, c.ts, c.rn, p.start FROM st c JOIN r{k - 1} p "
                    f"ON c.person = p.person AND c.rn = p.rn + 1 AND c.ts - p.ts <= {window} WHERE c.step = {k})"
                )
            else:
                ctes.append(
                    f"r{k} AS (SELECT person, ts, rn, start FROM (SELECT person, ts, rn, cand, "
                    f"MAX(prev_start) OVER (PARTITION BY person ORDER BY ts "
                    f"RANGE BETWEEN {window} PRECEDING AND 1 PRECEDING) AS start FROM ("
                    f"SELECT person, ts, rn, start AS prev_start, 0 AS cand FROM r{k - 1} UNION ALL "
                    f"SELECT person, ts, rn, CAST(NULL AS BIGINT) AS prev_start, 1 AS cand FROM st WHERE step = {k}"
                    f") u) x WHERE cand = 1 AND start IS NOT NULL)"
                )
        ctes.append(
            "reach AS ("
            + " UNION ALL ".join(
                f"SELECT {k} AS step, person, MIN(ts - start) AS took FROM r{k} GROUP BY person"
                for k in range(1, n + 1)
            )
            + ")"
        )
        first_rows = "st WHERE step = 1"
    if spec.breakdown:
        ctes.append(
            f"bd AS (SELECT person, COALESCE(bval, '(none)') AS breakdown FROM (SELECT person, "
            f"{prop(spec.breakdown)} AS bval, ROW_NUMBER() OVER (PARTITION BY person ORDER BY ts, rn) AS nth "
            f"FROM {first_rows}) f WHERE nth = 1)"
        )
        ctes.append(
            "joined AS (SELECT COALESCE(b.breakdown, '(none)') AS breakdown, r.step, r.took "
            "FROM reach r LEFT JOIN bd b ON r.person = b.person)"
        )
    else:
        ctes.append("joined AS (SELECT '(all)' AS breakdown, step, took FROM reach)")
    ctes.append(
        "ranked AS (SELECT breakdown, step, took, "
        "ROW_NUMBER() OVER (PARTITION BY breakdown, step ORDER BY took NULLS LAST) AS _rn, "
        "COUNT(took) OVER (PARTITION BY breakdown, step) AS _n, "
        "COUNT(*) OVER (PARTITION BY breakdown, step) AS people FROM joined)"
    )
    sql = (
        "WITH " + ",\n".join(ctes) + "\nSELECT breakdown, step, MAX(people) AS people, "
        "AVG(CASE WHEN took IS NOT NULL AND _rn BETWEEN _n / 2.0 AND _n / 2.0 + 1 THEN took END) AS median_ms "
        "FROM ranked GROUP BY breakdown, step ORDER BY breakdown, step"
    )
    return Query("funnel", sql, ("event",), spec.start, spec.end)


# ------------------------------------------------------------------------------ retention
class RetentionSpec(_Spec):
    report: Literal["retention"] = "retention"
    cohort: Literal["first_seen", "first_order"] = "first_seen"
    unit: Unit = "week"
    periods: int = Field(default=8, ge=1, le=60)
    mode: Literal["on", "on_or_after"] = "on"
    return_event: str | None = Field(default=None, max_length=256, description="any event when absent")
    conversion_event: EventName = "Order Completed"
    history_from: date | None = Field(default=None, description="first seen / first order since this day")


def retention(spec: RetentionSpec) -> Query:
    history = min(spec.history_from or spec.start, spec.start)
    unit = text(spec.unit)
    cohort_filter = (
        "TRUE" if spec.cohort == "first_seen" else f"event_type = 'track' AND event = {text(spec.conversion_event)}"
    )
    returns = "TRUE" if spec.return_event is None else f"e.event = {text(spec.return_event)}"
    periods = " UNION ALL ".join(f"SELECT {k} AS period" for k in range(spec.periods))
    grid = "(SELECT DISTINCT cohort FROM cohorts) c CROSS JOIN periods p"
    if spec.mode == "on":
        # Returned in period N itself; revenue is that period's.
        counted = (
            f"SELECT c.cohort, p.period, COUNT(DISTINCT a.person) AS people, COALESCE(SUM(a.revenue), 0) AS revenue "
            f"FROM {grid} LEFT JOIN acts a ON a.cohort = c.cohort AND a.period = p.period GROUP BY c.cohort, p.period"
        )
    else:
        # Returned in period N or any later one; revenue is cumulative up to N (LTV by cohort).
        counted = (
            "SELECT k.cohort, k.period, k.people, m.revenue FROM (SELECT c.cohort, p.period, "
            "COUNT(DISTINCT CASE WHEN l.last_period >= p.period THEN l.person END) AS people "
            f"FROM {grid} LEFT JOIN lasts l ON l.cohort = c.cohort GROUP BY c.cohort, p.period) k JOIN ("
            f"SELECT c.cohort, p.period, COALESCE(SUM(a.revenue), 0) AS revenue FROM {grid} LEFT JOIN acts a "
            "ON a.cohort = c.cohort AND a.period <= p.period GROUP BY c.cohort, p.period) m "
            "ON m.cohort = k.cohort AND m.period = k.period"
        )
    ctes = [
        f"ev AS (SELECT profile_id AS person, event, event_type, occurred_at, revenue, {ts()} AS ts FROM archive "
        f"WHERE kind = 'event' AND dt BETWEEN {text(history.isoformat())} AND {text(spec.end.isoformat())} "
        f"AND {within(history, spec.end)})",
        f"firsts AS (SELECT person, MIN(occurred_at) AS first_at, MIN(ts) AS first_ts FROM ev "
        f"WHERE {cohort_filter} GROUP BY person)",
        f"cohorts AS (SELECT person, date_trunc({unit}, first_at) AS cohort_at, "
        f"strftime(date_trunc({unit}, first_at), '%Y-%m-%d') AS cohort FROM firsts "
        f"WHERE first_ts >= {epoch_ms(spec.start)} AND first_ts < {epoch_ms(spec.end + timedelta(days=1))})",
        f"acts AS (SELECT e.person, c.cohort, date_diff({unit}, c.cohort_at, date_trunc({unit}, e.occurred_at)) "
        f"AS period, e.revenue FROM ev e JOIN cohorts c ON e.person = c.person "
        f"JOIN firsts f ON f.person = e.person WHERE e.ts >= f.first_ts AND {returns})",
        "lasts AS (SELECT person, cohort, MAX(period) AS last_period FROM acts GROUP BY person, cohort)",
        f"periods AS ({periods})",
        f"counted AS ({counted})",
        "sizes AS (SELECT cohort, COUNT(*) AS size FROM cohorts GROUP BY cohort)",
    ]
    select = (
        "SELECT k.cohort, s.size, k.period, k.people, k.revenue FROM counted k JOIN sizes s ON s.cohort = k.cohort "
        "ORDER BY k.cohort, k.period"
    )
    sql = "WITH " + ",\n".join(ctes) + "\n" + select
    return Query("retention", sql, ("event",), history, spec.end)


# ------------------------------------------------------------------------------ trends
class TrendsSpec(_Spec):
    report: Literal["trends"] = "trends"
    events: list[EventName] | None = Field(default=None, max_length=20, description="every track event when absent")
    unit: Unit = "day"
    breakdown: str | None = Field(default=None, pattern=_PROPERTY, max_length=_PROPERTY_LENGTH)


def trends(spec: TrendsSpec) -> Query:
    events = f" AND event IN ({texts(spec.events)})" if spec.events else ""
    breakdown = f"COALESCE({prop(spec.breakdown)}, '(none)')" if spec.breakdown else "'(all)'"
    sql = (
        f"SELECT {period_start(spec.unit)} AS period, event, {breakdown} AS breakdown, COUNT(*) AS events, "
        f"COUNT(DISTINCT profile_id) AS people FROM archive WHERE kind = 'event' "
        f"AND dt BETWEEN {text(spec.start.isoformat())} AND {text(spec.end.isoformat())} "
        f"AND event_type = 'track'{events} AND {within(spec.start, spec.end)} "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    return Query("trends", sql, ("event",), spec.start, spec.end)


# ------------------------------------------------------------------------------ channels and UTM
class ChannelsSpec(_Spec):
    report: Literal["channels"] = "channels"
    conversion_event: EventName = "Order Completed"
    lookback_days: int = Field(default=30, ge=1, le=365, description="a conversion's UTM visit is this recent")


def _last_touch_ctes(start: date, end: date, conversion_event: str, lookback_days: int) -> list[str]:
    """Visits carrying UTM fields, conversions, and each conversion's latest visit in the lookback
    (last touch); a conversion without one is `(direct)`."""
    early = start - timedelta(days=lookback_days)
    return [
        f"v AS (SELECT profile_id AS person, {ts()} AS ts, utm_source AS src, "
        f"COALESCE(utm_medium, '(none)') AS med, COALESCE(utm_campaign, '(none)') AS cmp FROM archive "
        f"WHERE kind = 'event' AND dt BETWEEN {text(early.isoformat())} AND {text(end.isoformat())} "
        f"AND utm_source IS NOT NULL AND {within(early, end)})",
        f"c AS (SELECT profile_id AS person, {ts()} AS ts, record_id AS id, COALESCE(revenue, 0) AS rev FROM archive "
        f"WHERE kind = 'event' AND dt BETWEEN {text(start.isoformat())} AND {text(end.isoformat())} "
        f"AND event_type = 'track' AND event = {text(conversion_event)} AND {within(start, end)})",
        "touched AS (SELECT c.id, c.rev, v.src, v.med, v.cmp, ROW_NUMBER() OVER (PARTITION BY c.id "
        "ORDER BY v.ts DESC, v.src, v.med, v.cmp) AS pick FROM c JOIN v ON v.person = c.person "
        f"AND v.ts <= c.ts AND v.ts >= c.ts - {lookback_days * DAY_MS})",
        "credited AS (SELECT src, med, cmp, id, rev FROM touched WHERE pick = 1 UNION ALL "
        "SELECT '(direct)' AS src, '(none)' AS med, '(none)' AS cmp, id, rev FROM c "
        "WHERE id NOT IN (SELECT id FROM touched))",
    ]


def channels(spec: ChannelsSpec) -> Query:
    ctes = _last_touch_ctes(spec.start, spec.end, spec.conversion_event, spec.lookback_days)
    ctes += [
        "conv AS (SELECT src, med, cmp, COUNT(*) AS conversions, SUM(rev) AS revenue FROM credited "
        "GROUP BY src, med, cmp)",
        f"visits AS (SELECT src, med, cmp, COUNT(*) AS visits, COUNT(DISTINCT person) AS people FROM v "
        f"WHERE ts >= {epoch_ms(spec.start)} GROUP BY src, med, cmp)",
    ]
    sql = (
        "WITH " + ",\n".join(ctes) + "\nSELECT COALESCE(a.src, b.src) AS source, COALESCE(a.med, b.med) AS medium, "
        "COALESCE(a.cmp, b.cmp) AS campaign, COALESCE(a.visits, 0) AS visits, COALESCE(a.people, 0) AS people, "
        "COALESCE(b.conversions, 0) AS conversions, COALESCE(b.revenue, 0) AS revenue "
        "FROM visits a FULL OUTER JOIN conv b ON a.src = b.src AND a.med = b.med AND a.cmp = b.cmp "
        "ORDER BY 1, 2, 3"
    )
    return Query("channels", sql, ("event",), spec.start - timedelta(days=spec.lookback_days), spec.end)


# ------------------------------------------------------------------------------ campaign / journey / rule performance
_OUTCOMES = (
    ("requested", "message_requested"),
    ("blocked", "message_blocked"),
    ("deferred", "message_deferred"),
    ("sent", "message_sent"),
    ("failed", "message_failed"),
    ("delivered", "message_delivered"),
    ("opened", "message_opened"),
    ("clicked", "message_clicked"),
    ("bounced", "message_bounced"),
    ("complained", "message_complained"),
    ("unsubscribed", "message_unsubscribed"),
    ("converted", "message_converted"),
)
OUTCOME_COLUMNS = tuple(name for name, _ in _OUTCOMES)


class PerformanceSpec(_Spec):
    report: Literal["performance"] = "performance"
    origin_kind: Literal["campaign", "journey", "rule", "api"] | None = None
    origin_id: str | None = Field(default=None, max_length=64)
    unit: Unit = "day"


def _outcome_counts() -> str:
    """Distinct messages per outcome: two opens of one email are one opened message."""
    return ", ".join(f"COUNT(DISTINCT CASE WHEN kind = {text(k)} THEN message_id END) AS {n}" for n, k in _OUTCOMES)


def performance(spec: PerformanceSpec) -> Query:
    filters = ""
    if spec.origin_kind:
        filters += f" AND origin_kind = {text(spec.origin_kind)}"
    if spec.origin_id:
        filters += f" AND origin_id = {text(spec.origin_id)}"
    sql = (
        f"SELECT origin_kind, origin_id, {period_start(spec.unit)} AS period, {_outcome_counts()}, "
        "SUM(CASE WHEN kind = 'message_converted' THEN COALESCE(revenue, 0) ELSE 0 END) AS revenue "
        f"FROM ({source(MESSAGE_KINDS, spec.start, spec.end)}{filters} AND {within(spec.start, spec.end)}) m "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    return Query("performance", sql, MESSAGE_KINDS, spec.start, spec.end)


# ------------------------------------------------------------------------------ weekly / monthly review
class ReviewSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    report: Literal["review"] = "review"
    period: Literal["week", "month"] = "week"
    of: date = Field(description="any day of the period to review")
    conversion_event: EventName = "Order Completed"
    history_days: int = Field(default=365, ge=0, le=3650, description="how far back 'people' and 'new' look")

    def bounds(self) -> tuple[tuple[date, date], tuple[date, date]]:
        """(current, previous) periods, each [first day, last day]: weeks from Monday, calendar months."""
        if self.period == "week":
            first = self.of - timedelta(days=self.of.weekday())
            return (first, first + timedelta(days=6)), (first - timedelta(days=7), first - timedelta(days=1))
        first = self.of.replace(day=1)
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        previous_last = first - timedelta(days=1)
        return (first, last), (previous_last.replace(day=1), previous_last)


def review(spec: ReviewSpec) -> Query:
    (c_start, c_end), (p_start, p_end) = spec.bounds()
    history = p_start - timedelta(days=spec.history_days)
    conversion = f"event_type = 'track' AND event = {text(spec.conversion_event)}"
    bounds = (
        f"SELECT 'current' AS period, {text(c_start.isoformat())} AS first_day, {text(c_end.isoformat())} AS last_day, "
        f"{epoch_ms(c_start)} AS s, {epoch_ms(c_end + timedelta(days=1))} AS e UNION ALL "
        f"SELECT 'previous', {text(p_start.isoformat())}, {text(p_end.isoformat())}, "
        f"{epoch_ms(p_start)}, {epoch_ms(p_end + timedelta(days=1))}"
    )
    message_counts = ", ".join(
        f"COUNT(DISTINCT CASE WHEN m.kind = {text(k)} THEN m.message_id END) AS {n}"
        for n, k in _OUTCOMES
        if n in {"sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed", "converted"}
    )
    kinds = tuple(
        k
        for n, k in _OUTCOMES
        if n in {"sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed", "converted"}
    )
    ctes = [
        f"bounds AS ({bounds})",
        f"ev AS (SELECT profile_id AS person, event, event_type, revenue, {ts()} AS ts FROM archive "
        f"WHERE kind = 'event' AND dt BETWEEN {text(history.isoformat())} AND {text(c_end.isoformat())} "
        f"AND {within(history, c_end)})",
        "firsts AS (SELECT person, MIN(ts) AS first_ts FROM ev GROUP BY person)",
        "known AS (SELECT b.period, COUNT(*) AS people, SUM(CASE WHEN f.first_ts >= b.s THEN 1 ELSE 0 END) AS new "
        "FROM bounds b JOIN firsts f ON f.first_ts < b.e GROUP BY b.period)",
        f"active AS (SELECT b.period, COUNT(DISTINCT e.person) AS active, "
        f"SUM(CASE WHEN {conversion} THEN 1 ELSE 0 END) AS orders, "
        f"SUM(CASE WHEN {conversion} THEN COALESCE(e.revenue, 0) ELSE 0 END) AS revenue "
        "FROM bounds b JOIN ev e ON e.ts >= b.s AND e.ts < b.e GROUP BY b.period)",
        f"msgs AS (SELECT b.period, {message_counts} FROM bounds b JOIN "
        f"(SELECT kind, message_id, {ts()} AS ts FROM archive WHERE kind IN ({texts(kinds)}) "
        f"AND dt BETWEEN {text(p_start.isoformat())} AND {text(c_end.isoformat())}) m "
        "ON m.ts >= b.s AND m.ts < b.e GROUP BY b.period)",
    ]
    message_columns = ", ".join(f"COALESCE(m.{n}, 0) AS {n}" for n, _ in _OUTCOMES if f" AS {n}" in message_counts)
    sql = (
        "WITH " + ",\n".join(ctes) + "\nSELECT b.period, b.first_day, b.last_day, COALESCE(k.people, 0) AS people, "
        "COALESCE(a.active, 0) AS active, COALESCE(k.new, 0) AS new, COALESCE(a.orders, 0) AS orders, "
        f"COALESCE(a.revenue, 0) AS revenue, {message_columns} "
        "FROM bounds b LEFT JOIN known k ON k.period = b.period LEFT JOIN active a ON a.period = b.period "
        "LEFT JOIN msgs m ON m.period = b.period ORDER BY b.period"
    )
    return Query("review", sql, ("event", *kinds), history, c_end)


# ------------------------------------------------------------------------------ spend and ROI
class RoiSpec(_Spec):
    report: Literal["roi"] = "roi"
    conversion_event: EventName = "Order Completed"
    lookback_days: int = Field(default=30, ge=1, le=365)
    holdout_variant: str = Field(default="holdout", min_length=1, max_length=64)


def roi(spec: RoiSpec) -> Query:
    """Per channel and campaign: messages (channel, origin id), UTM visits (source, campaign) and
    their last-touch conversions, imported spend, and the incremental revenue of campaigns that
    kept a holdout (experiment exposures whose experiment id is the campaign), on the rows of that
    campaign's messages."""
    start, end = spec.start, spec.end
    lookback = spec.lookback_days * DAY_MS
    days = f"dt BETWEEN {text(start.isoformat())} AND {text(end.isoformat())}"
    ctes = _last_touch_ctes(start, end, spec.conversion_event, spec.lookback_days)
    holdout = text(spec.holdout_variant)
    ctes += [
        "msg AS (SELECT channel, origin_id AS campaign, "
        "COUNT(DISTINCT CASE WHEN kind = 'message_sent' THEN message_id END) AS sends, "
        "COUNT(DISTINCT CASE WHEN kind = 'message_delivered' THEN message_id END) AS delivered, "
        "COUNT(DISTINCT CASE WHEN kind = 'message_opened' THEN message_id END) AS opens, "
        "COUNT(DISTINCT CASE WHEN kind = 'message_clicked' THEN message_id END) AS clicks, "
        "COUNT(CASE WHEN kind = 'message_converted' THEN 1 END) AS conversions, "
        "SUM(CASE WHEN kind = 'message_converted' THEN COALESCE(revenue, 0) ELSE 0 END) AS revenue FROM archive "
        "WHERE kind IN ('message_sent', 'message_delivered', 'message_opened', 'message_clicked', "
        f"'message_converted') AND {days} AND {within(start, end)} GROUP BY channel, origin_id)",
        "visits AS (SELECT src AS channel, cmp AS campaign, COUNT(*) AS visits FROM v "
        f"WHERE ts >= {epoch_ms(start)} GROUP BY src, cmp)",
        "utm AS (SELECT src AS channel, cmp AS campaign, COUNT(*) AS conversions, SUM(rev) AS revenue "
        "FROM credited GROUP BY src, cmp)",
        # A spend line imported again (a corrected file) replaces the earlier copy: the newest
        # archived copy of each line counts. Spend is small, so this dedupe costs nothing.
        f"cost AS (SELECT channel, COALESCE(campaign, '(none)') AS campaign, SUM(amount) AS cost, "
        f"MIN(currency) AS currency FROM (SELECT channel, campaign, amount, currency, ROW_NUMBER() OVER "
        f"(PARTITION BY record_id ORDER BY archived_at DESC) AS copy FROM archive WHERE kind = 'spend' AND {days}) "
        "s WHERE copy = 1 GROUP BY channel, COALESCE(campaign, '(none)'))",
        f"exposed AS (SELECT experiment_id AS campaign, profile_id AS person, MIN({ts()}) AS ts, "
        f"MAX(CASE WHEN variant = {holdout} THEN 1 ELSE 0 END) AS held FROM archive "
        f"WHERE kind = 'experiment_exposure' AND {days} AND {within(start, end)} GROUP BY experiment_id, profile_id)",
        "outcome AS (SELECT x.campaign, x.person, x.held, COALESCE(SUM(c.rev), 0) AS rev FROM exposed x "
        f"LEFT JOIN c ON c.person = x.person AND c.ts >= x.ts AND c.ts <= x.ts + {lookback} "
        "GROUP BY x.campaign, x.person, x.held)",
        "lift AS (SELECT campaign, SUM(CASE WHEN held = 0 THEN rev ELSE 0 END) - "
        "SUM(CASE WHEN held = 1 THEN rev ELSE 0 END) * SUM(1 - held) / SUM(held) AS incremental_revenue, "
        "SUM(1 - held) AS treated, SUM(held) AS held_out FROM outcome GROUP BY campaign HAVING SUM(held) > 0)",
        "keys AS (SELECT channel, campaign FROM msg UNION SELECT channel, campaign FROM visits UNION "
        "SELECT channel, campaign FROM utm UNION SELECT channel, campaign FROM cost)",
    ]
    sql = (
        "WITH "
        + ",\n".join(ctes)
        + "\nSELECT k.channel, k.campaign, COALESCE(m.sends, 0) AS sends, COALESCE(m.delivered, 0) AS delivered, "
        "COALESCE(m.opens, 0) AS opens, COALESCE(m.clicks, 0) + COALESCE(v.visits, 0) AS clicks, "
        "COALESCE(v.visits, 0) AS visits, COALESCE(m.conversions, 0) + COALESCE(u.conversions, 0) AS conversions, "
        "COALESCE(m.revenue, 0) + COALESCE(u.revenue, 0) AS revenue, COALESCE(s.cost, 0) AS cost, s.currency, "
        "l.incremental_revenue, l.treated, l.held_out "
        "FROM keys k LEFT JOIN msg m ON m.channel = k.channel AND m.campaign = k.campaign "
        "LEFT JOIN visits v ON v.channel = k.channel AND v.campaign = k.campaign "
        "LEFT JOIN utm u ON u.channel = k.channel AND u.campaign = k.campaign "
        "LEFT JOIN cost s ON s.channel = k.channel AND s.campaign = k.campaign "
        # A holdout withholds the campaign's messages, not a UTM campaign that shares its name: the lift
        # belongs on the rows of its messages only.
        "LEFT JOIN lift l ON l.campaign = k.campaign AND m.campaign IS NOT NULL ORDER BY 1, 2"
    )
    kinds = ("event", "message_sent", "message_delivered", "message_opened", "message_clicked")
    return Query(
        "roi",
        sql,
        (*kinds, "message_converted", "spend", "experiment_exposure"),
        start - timedelta(days=spec.lookback_days),
        end,
    )


# ------------------------------------------------------------------------------ attribution paths
TouchKind = Literal["visit", "sent", "opened", "clicked"]
TOUCH_KINDS: tuple[TouchKind, ...] = ("visit", "sent", "opened", "clicked")


class PathsSpec(_Spec):
    report: Literal["attribution"] = "attribution"
    conversion_event: EventName = "Order Completed"
    lookback_days: int = Field(default=30, ge=1, le=365)
    touches: list[TouchKind] = Field(default_factory=lambda: list(TOUCH_KINDS), min_length=1)
    include_nulls: bool = True


def attribution_paths(spec: PathsSpec) -> Query:
    """The archive's touches and conversions as aggregated paths (`channels` joined by '>'),
    exactly as `logic.attribution.build_paths` + `aggregate` build them in Python."""
    early = spec.start - timedelta(days=spec.lookback_days)
    lookback = spec.lookback_days * DAY_MS
    end_ms = epoch_ms(spec.end + timedelta(days=1))
    days = f"dt BETWEEN {text(early.isoformat())} AND {text(spec.end.isoformat())}"
    parts = []
    if "visit" in spec.touches:
        parts.append(
            f"SELECT profile_id AS person, {ts()} AS ts, utm_source AS ch FROM archive WHERE kind = 'event' "
            f"AND {days} AND utm_source IS NOT NULL AND {within(early, spec.end)}"
        )
    message_kinds = [f"message_{t}" for t in spec.touches if t != "visit"]
    if message_kinds:
        parts.append(
            f"SELECT profile_id AS person, {ts()} AS ts, channel AS ch FROM archive "
            f"WHERE kind IN ({texts(message_kinds)}) AND {days} AND {within(early, spec.end)}"
        )
    ctes = [
        "t AS (" + " UNION ALL ".join(parts) + ")",
        f"allc AS (SELECT profile_id AS person, {ts()} AS ts, record_id AS id, COALESCE(revenue, 0) AS rev, "
        f"LAG({ts()}) OVER (PARTITION BY profile_id ORDER BY {ts()}, record_id) AS prev_ts FROM archive "
        f"WHERE kind = 'event' AND {days} AND event_type = 'track' AND event = {text(spec.conversion_event)} "
        f"AND {within(early, spec.end)})",
        f"c AS (SELECT * FROM allc WHERE ts >= {epoch_ms(spec.start)})",
        "ct AS (SELECT c.id, t.ch, t.ts FROM c JOIN t ON t.person = c.person AND t.ts <= c.ts "
        f"AND t.ts >= c.ts - {lookback} AND (c.prev_ts IS NULL OR t.ts > c.prev_ts))",
        "won AS (SELECT c.id, c.rev, COALESCE(string_agg(ct.ch, '>' ORDER BY ct.ts, ct.ch), 'direct') AS path "
        "FROM c LEFT JOIN ct ON ct.id = c.id GROUP BY c.id, c.rev)",
        "lastc AS (SELECT person, MAX(ts) AS last_ts FROM allc GROUP BY person)",
        "lost AS (SELECT t.person, string_agg(t.ch, '>' ORDER BY t.ts, t.ch) AS path FROM t "
        "LEFT JOIN lastc l ON l.person = t.person WHERE (l.last_ts IS NULL OR t.ts > l.last_ts) "
        f"AND t.ts >= {end_ms - lookback} AND t.ts < {end_ms} GROUP BY t.person)",
    ]
    nulls = " UNION ALL SELECT path, 0 AS conversions, 1 AS nulls, 0 AS value FROM lost" if spec.include_nulls else ""
    sql = (
        "WITH "
        + ",\n".join(ctes)
        + "\nSELECT path, SUM(conversions) AS conversions, SUM(nulls) AS nulls, SUM(value) AS value FROM ("
        f"SELECT path, 1 AS conversions, 0 AS nulls, rev AS value FROM won{nulls}) p GROUP BY path ORDER BY path"
    )
    kinds = ("event", *message_kinds)
    return Query("attribution", sql, kinds, early, spec.end)


ReportSpec = Annotated[
    FunnelSpec | RetentionSpec | TrendsSpec | ChannelsSpec | PerformanceSpec | ReviewSpec | RoiSpec | PathsSpec,
    Field(discriminator="report"),
]


def build(spec: BaseModel) -> Query:
    builders = {
        FunnelSpec: funnel,
        RetentionSpec: retention,
        TrendsSpec: trends,
        ChannelsSpec: channels,
        PerformanceSpec: performance,
        ReviewSpec: review,
        RoiSpec: roi,
        PathsSpec: attribution_paths,
    }
    builder = builders.get(type(spec))
    if builder is None:
        raise TypeError(f"no report for {type(spec).__name__}")
    return builder(spec)  # type: ignore[operator]
