"""The scripted month (tests/analytics_fixture.py) archived as Parquet, every report run on
embedded DuckDB, each answer equal to the figures worked out by hand below; the same SQL in
Trino's dialect parses; the archive reads back through S3 (moto) the same way."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from midstage.adapters import parquet
from midstage.adapters.archive_engines import LocalArchive, S3Archive
from midstage.logic import attribution
from midstage.logic.analytics import reports
from midstage.logic.analytics.dialects import check_parses, to_trino
from midstage.logic.archive.spend import parse_spend_csv
from midstage.models.archive import EventRecord, MessageRecord
from midstage.services import analytics
from tests import analytics_fixture

NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
MARCH = {"start": date(2026, 3, 1), "end": date(2026, 3, 31)}
STEPS = [{"event": "Product Viewed"}, {"event": "Product Added"}, {"event": "Order Completed"}]
HOUR, DAY = 3600, 86400


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> LocalArchive:
    root = tmp_path_factory.mktemp("archive")
    store = LocalArchive(root, threads=1)
    store.write(analytics_fixture.build(), "fixture")
    return store


def _run(spec: object, archive: LocalArchive) -> dict:
    return analytics.report(spec, archive, NOW).to_body()  # type: ignore[arg-type]


def _funnel(body: dict, breakdown: str = "(all)") -> list[tuple[int, int, float | None]]:
    return [(s["step"], s["people"], s["median_seconds"]) for s in body["summary"]["breakdowns"][breakdown]]


def _flat(table: dict[str, dict[str, float]]) -> dict[tuple[str, str], float]:
    return {(channel, figure): value for channel, figures in table.items() for figure, value in figures.items()}


def _approx(table: dict[str, dict[str, float]]) -> object:
    return pytest.approx(_flat(table))


# ------------------------------------------------------------------ the archive itself
def test_the_archive_is_laid_out_by_kind_and_day_and_reads_back(archive: LocalArchive) -> None:
    # Given the fixture written once
    # Then each record sits under kind=<kind>/dt=<day>/ and decodes to what was written
    kinds = sorted(p.name for p in archive.root.iterdir())
    assert "kind=event" in kinds and "kind=message_sent" in kinds and "kind=spend" in kinds
    day = archive.root / "kind=event" / "dt=2026-03-04" / "fixture.parquet"
    rows = parquet.decode(day.read_bytes())
    assert [r["event"] for r in rows] == ["Product Viewed", "Product Added", "Coupon Applied", "Order Completed"]
    assert rows[-1]["revenue"] == 50.0  # Order Completed's `total` when there is no `revenue`
    assert rows[0]["utm_source"] == "newsletter" and rows[0]["schema_version"] == 1
    assert "kind" not in rows[0] and "dt" not in rows[0]  # partition values live in the path only


def test_writing_the_same_batch_again_archives_nothing_twice(tmp_path: Path) -> None:
    # Given a batch that carries every record twice, written, then retried under the same name
    store = LocalArchive(tmp_path, threads=1)
    fixture = analytics_fixture.build()
    store.write(fixture + analytics_fixture.build(), "batch-1")
    store.write(fixture, "batch-1")
    # Then each order is counted once: five orders by five people in March
    answer = _run(reports.TrendsSpec(**MARCH, events=["Order Completed"], unit="month"), store)
    assert answer["rows"] == [
        {"period": "2026-03-01", "event": "Order Completed", "breakdown": "(all)", "events": 5, "people": 5}
    ]


# ------------------------------------------------------------------ funnels
def test_ordered_funnel_counts_people_per_step_with_the_per_step_window(archive: LocalArchive) -> None:
    # p1 V>A>O (1 d, then 2 d); p3 V>A>O (30 min, 1 h in all); p5 V>A (2 d); p2's add is 18 days
    # after the view (past 14); p4 added before viewing.
    body = _run(reports.FunnelSpec(**MARCH, steps=STEPS), archive)
    # medians: step 2 of {1 d, 30 min, 2 d} = 1 d; step 3 of {3 d, 1 h} = (3 d + 1 h) / 2
    assert _funnel(body) == [(1, 5, 0.0), (2, 3, DAY), (3, 2, (3 * DAY + HOUR) / 2)]
    steps = body["summary"]["breakdowns"]["(all)"]
    assert steps[2]["conversion"] == pytest.approx(2 / 5) and steps[1]["step_conversion"] == pytest.approx(3 / 5)
    assert body["bytes_scanned"] > 0
    assert body["freshness"] == {
        "data_until": "2026-03-24T10:00:00.000Z",
        "archived_until": "2026-04-01T00:05:00.000Z",
        "as_of": "2026-04-01T08:00:00.000Z",
    }


def test_a_wider_window_lets_the_late_add_count(archive: LocalArchive) -> None:
    body = _run(reports.FunnelSpec(**MARCH, steps=STEPS, window_days=30), archive)
    # p2 now converts too: view Mar 2 12:00, add Mar 20 12:00 (18 d), order Mar 21 12:00 (19 d in all)
    assert [(s, n) for s, n, _ in _funnel(body)] == [(1, 5), (2, 4), (3, 3)]


def test_strict_funnel_breaks_on_any_event_between_steps(archive: LocalArchive) -> None:
    # p3's coupon comes between add and order; p1's identify call is not an event that breaks it.
    body = _run(reports.FunnelSpec(**MARCH, steps=STEPS, mode="strict"), archive)
    assert _funnel(body) == [(1, 5, 0.0), (2, 3, DAY), (3, 1, 3 * DAY)]


def test_any_order_funnel_takes_the_steps_in_any_order_within_one_window(archive: LocalArchive) -> None:
    # p4 (add, view, order in 2 days) now converts; p2 reaches 2 (add + order); p6 only ordered.
    body = _run(reports.FunnelSpec(**MARCH, steps=STEPS, mode="any_order"), archive)
    assert _funnel(body) == [(1, 6, None), (2, 5, None), (3, 3, 2 * DAY)]


def test_funnel_breakdown_by_the_first_step_property(archive: LocalArchive) -> None:
    body = _run(reports.FunnelSpec(**MARCH, steps=STEPS, breakdown="plan"), archive)
    assert [(s, n) for s, n, _ in _funnel(body, "pro")] == [(1, 2), (2, 2), (3, 2)]
    assert [(s, n) for s, n, _ in _funnel(body, "basic")] == [(1, 2), (2, 1)]
    assert [(s, n) for s, n, _ in _funnel(body, "(none)")] == [(1, 1)]


def test_funnel_step_filters_on_properties(archive: LocalArchive) -> None:
    steps = [{"event": "Product Viewed", "where": {"plan": "pro"}}, {"event": "Order Completed"}]
    body = _run(reports.FunnelSpec(**MARCH, steps=steps), archive)
    assert [(s, n) for s, n, _ in _funnel(body)] == [(1, 2), (2, 2)]


# ------------------------------------------------------------------ retention
def test_weekly_first_seen_retention_on_the_week(archive: LocalArchive) -> None:
    # week of Mar 2: p1 p2 p3 p4 (p1 back Mar 17, p2 back Mar 19-21: week +2);
    # week of Mar 9: p5 p6 (p5 back Mar 24: week +2). Revenue in period: 100+50+30, then p2's 40; p6's 20.
    body = _run(reports.RetentionSpec(**MARCH, unit="week", periods=4), archive)
    table = [(r["cohort"], r["size"], r["period"], r["people"], r["revenue"]) for r in body["rows"]]
    assert table == [
        ("2026-03-02", 4, 0, 4, 180),
        ("2026-03-02", 4, 1, 0, 0),
        ("2026-03-02", 4, 2, 2, 40),
        ("2026-03-02", 4, 3, 0, 0),
        ("2026-03-09", 2, 0, 2, 20),
        ("2026-03-09", 2, 1, 0, 0),
        ("2026-03-09", 2, 2, 1, 0),
        ("2026-03-09", 2, 3, 0, 0),
    ]


def test_weekly_retention_on_or_after_counts_later_returns_and_sums_revenue(archive: LocalArchive) -> None:
    body = _run(reports.RetentionSpec(**MARCH, unit="week", periods=4, mode="on_or_after"), archive)
    table = [(r["cohort"], r["period"], r["people"], r["revenue"]) for r in body["rows"]]
    assert table == [
        ("2026-03-02", 0, 4, 180),
        ("2026-03-02", 1, 2, 180),
        ("2026-03-02", 2, 2, 220),
        ("2026-03-02", 3, 0, 220),
        ("2026-03-09", 0, 2, 20),
        ("2026-03-09", 1, 1, 20),
        ("2026-03-09", 2, 1, 20),
        ("2026-03-09", 3, 0, 20),
    ]


def test_first_order_cohorts_by_month_give_ltv(archive: LocalArchive) -> None:
    # Five buyers, first orders all in March; their revenue in March: 100 + 40 + 50 + 30 + 20.
    body = _run(reports.RetentionSpec(**MARCH, cohort="first_order", unit="month", periods=2), archive)
    table = [(r["cohort"], r["size"], r["period"], r["people"], r["revenue"]) for r in body["rows"]]
    assert table == [("2026-03-01", 5, 0, 5, 240), ("2026-03-01", 5, 1, 0, 0)]


# ------------------------------------------------------------------ trends
def test_weekly_order_trend(archive: LocalArchive) -> None:
    body = _run(reports.TrendsSpec(**MARCH, events=["Order Completed"], unit="week"), archive)
    assert [(r["period"], r["events"], r["people"]) for r in body["rows"]] == [
        ("2026-03-02", 3, 3),
        ("2026-03-09", 1, 1),
        ("2026-03-16", 1, 1),
    ]


def test_trend_breakdown_by_property(archive: LocalArchive) -> None:
    body = _run(reports.TrendsSpec(**MARCH, events=["Product Viewed"], unit="month", breakdown="plan"), archive)
    assert [(r["breakdown"], r["events"], r["people"]) for r in body["rows"]] == [
        ("(none)", 3, 3),  # p4's view, p1's and p5's second views
        ("basic", 2, 2),
        ("pro", 2, 2),
    ]


# ------------------------------------------------------------------ channels and UTM
def test_channel_and_utm_performance_credits_each_order_to_its_last_utm_visit(archive: LocalArchive) -> None:
    body = _run(reports.ChannelsSpec(**MARCH), archive)
    assert [tuple(r.values()) for r in body["rows"]] == [
        ("(direct)", "(none)", "(none)", 0, 0, 2, 50),  # p4's 30 and p6's 20
        ("facebook", "social", "retarget", 1, 1, 1, 40),
        ("google", "cpc", "spring", 2, 2, 1, 100),
        ("newsletter", "email", "spring", 1, 1, 1, 50),
    ]


# ------------------------------------------------------------------ campaign / journey performance
def test_campaign_and_journey_performance_with_message_outcomes(archive: LocalArchive) -> None:
    body = _run(reports.PerformanceSpec(**MARCH, unit="month"), archive)
    rows = {(r["origin_kind"], r["origin_id"]): r for r in body["rows"]}
    spring = rows[("campaign", "spring")]
    assert {k: spring[k] for k in reports.OUTCOME_COLUMNS} == {
        "requested": 5,
        "blocked": 1,
        "deferred": 0,
        "sent": 4,
        "failed": 0,
        "delivered": 3,
        "opened": 2,  # p3 opened twice: one opened message
        "clicked": 2,
        "bounced": 1,
        "complained": 0,
        "unsubscribed": 1,
        "converted": 1,
    }
    assert spring["revenue"] == 50
    welcome = rows[("journey", "welcome")]
    assert (welcome["requested"], welcome["sent"], welcome["delivered"]) == (1, 1, 1)


# ------------------------------------------------------------------ review
def test_weekly_review_against_the_previous_week(archive: LocalArchive) -> None:
    body = _run(reports.ReviewSpec(period="week", of=date(2026, 3, 4)), archive)
    current, previous = body["summary"]["current"], body["summary"]["previous"]
    # Week Mar 2-8: p1-p4 active and new; orders p3 50, p1 100, p4 30.
    assert (current["first_day"], current["last_day"]) == ("2026-03-02", "2026-03-08")
    assert {k: current[k] for k in ("people", "active", "new", "orders", "revenue")} == {
        "people": 4,
        "active": 4,
        "new": 4,
        "orders": 3,
        "revenue": 180,
    }
    assert current["aov"] == 60
    assert {k: current[k] for k in ("sent", "delivered", "opened", "clicked", "converted", "bounced")} == {
        "sent": 0,
        "delivered": 1,
        "opened": 1,
        "clicked": 2,
        "converted": 1,
        "bounced": 0,
    }
    # Week Feb 23 - Mar 1: the four sends of Mar 1, two deliveries, p1's open, p4's bounce.
    assert {k: previous[k] for k in ("people", "orders", "sent", "delivered", "opened", "bounced")} == {
        "people": 0,
        "orders": 0,
        "sent": 4,
        "delivered": 2,
        "opened": 1,
        "bounced": 1,
    }
    assert previous["delivery_rate"] == 0.5 and previous["open_rate"] == 0.5
    assert body["summary"]["change"]["revenue"] == {"delta": 180, "relative": None}


def test_monthly_review_of_march(archive: LocalArchive) -> None:
    body = _run(reports.ReviewSpec(period="month", of=date(2026, 3, 20)), archive)
    current = body["summary"]["current"]
    assert {k: current[k] for k in ("people", "active", "new", "orders", "revenue", "unsubscribed")} == {
        "people": 6,
        "active": 6,
        "new": 6,
        "orders": 5,
        "revenue": 240,
        "unsubscribed": 1,
    }
    assert current["sent"] == 5  # four spring emails and the welcome SMS


# ------------------------------------------------------------------ ROI
def test_roi_table_per_channel_and_campaign_with_incremental_revenue_from_the_holdout(archive: LocalArchive) -> None:
    body = _run(reports.RoiSpec(**MARCH), archive)
    table = {(r["channel"], r["campaign"]): r for r in body["summary"]["table"]}
    assert set(table) == {
        ("(direct)", "(none)"),
        ("email", "spring"),
        ("facebook", "retarget"),
        ("google", "spring"),
        ("newsletter", "spring"),
        ("sms", "welcome"),
    }
    google = table[("google", "spring")]
    assert (google["clicks"], google["conversions"], google["revenue"], google["cost"]) == (2, 1, 100, 60)
    assert google["cpc"] == 30 and google["cpa"] == 60 and google["roas"] == pytest.approx(100 / 60)
    email = table[("email", "spring")]
    assert (email["sends"], email["delivered"], email["opens"], email["clicks"]) == (4, 3, 2, 2)
    assert (email["conversions"], email["revenue"], email["cost"], email["currency"]) == (1, 50, 5, "USD")
    # Treated p1 p3 p4 p5 brought 100 + 50 + 30 + 0 within 30 days; held-out p2 brought 40:
    # incremental = 180 - 40 x 4/1 = 20, and iROAS on the email's cost of 5 is 4.
    assert email["incremental_revenue"] == 20 and email["incremental_roas"] == 4
    assert (email["treated"], email["held_out"]) == (4, 1)
    # Only the email was held out: the Google ad and the newsletter link that share the name get no lift.
    assert table[("google", "spring")]["incremental_revenue"] is None
    assert table[("newsletter", "spring")]["incremental_roas"] is None
    assert table[("facebook", "retarget")]["roas"] == 4
    assert table[("(direct)", "(none)")]["conversions"] == 2


# ------------------------------------------------------------------ attribution over the archive
EXPECTED_PATHS = [
    attribution.Path(("email",), conversions=1, value=30.0),  # p4: the Mar 1 send
    attribution.Path(("email", "email", "email", "email", "newsletter"), conversions=1, value=50.0),  # p3
    attribution.Path(("email", "email", "email", "google"), conversions=1, value=100.0),  # p1
    attribution.Path(("facebook",), conversions=1, value=40.0),  # p2 (its blocked email is no touch)
    # p5 never bought: its visit of Mar 10 is in the 30 days before the end, its Mar 1 email is not
    attribution.Path(("google",), nulls=1),
    attribution.Path(("sms",), conversions=1, value=20.0),  # p6
]


def test_attribution_paths_from_sql_equal_the_hand_built_ones_and_build_paths(archive: LocalArchive) -> None:
    spec = reports.PathsSpec(**MARCH)
    paths, _ = analytics.paths_from_archive(spec, archive)
    assert sorted(paths, key=lambda p: p.channels) == EXPECTED_PATHS
    # the same touches through the pure Python path builder
    fixture = analytics_fixture.build()
    touches = [
        attribution.Touch(str(r.profile_id), r.occurred_at, str(r.utm_source))
        for r in fixture
        if isinstance(r, EventRecord) and r.utm_source
    ] + [
        attribution.Touch(r.profile_id, r.occurred_at, str(r.channel), kind=r.kind)
        for r in fixture
        if isinstance(r, MessageRecord) and r.kind in {"message_sent", "message_opened", "message_clicked"}
    ]
    conversions = [
        attribution.Conversion(str(r.profile_id), r.occurred_at, r.revenue or 0.0)
        for r in fixture
        if isinstance(r, EventRecord) and r.event == "Order Completed"
    ]
    built = attribution.aggregate(
        attribution.build_paths(touches, conversions, end=datetime(2026, 4, 1, tzinfo=UTC) - timedelta(milliseconds=1))
    )
    assert sorted(built, key=lambda p: p.channels) == EXPECTED_PATHS


def test_markov_attribution_over_the_archive_matches_the_chain_solved_by_hand(archive: LocalArchive) -> None:
    # The chain of EXPECTED_PATHS (self-loops email>email change no absorption probability):
    #   start -> email 3/6, facebook 1/6, google 1/6, sms 1/6
    #   email -> conversion 1/3, newsletter 1/3, google 1/3; google -> conversion 1/2, null 1/2;
    #   facebook, newsletter, sms -> conversion.
    # P(conv | email) = 1/3 + 1/3 + 1/3 x 1/2 = 5/6, so P = (3 x 5/6 + 1 + 1/2 + 1) / 6 = 5/6.
    # Without email: (1 + 1/2 + 1) / 6 = 5/12, RE = 1/2. Without facebook or sms: (5/2 + 1/2 + 1) / 6
    # = 4/6, RE = 1/5. Without google: email gives 2/3, (2 + 1 + 1) / 6 = 4/6, RE = 1/5. Without
    # newsletter: email gives 1/2, (3/2 + 1 + 1/2 + 1) / 6 = 4/6, RE = 1/5.
    body = analytics.attribute(reports.PathsSpec(**MARCH), archive, NOW).to_body()
    effects = body["summary"]["removal_effects"]
    assert effects == pytest.approx({"email": 0.5, "facebook": 0.2, "google": 0.2, "newsletter": 0.2, "sms": 0.2})
    # Credits: the 5 orders and 240 of revenue shared by RE / sum(RE) = RE / 1.3.
    markov = body["summary"]["models"]["markov"]
    assert markov["email"] == pytest.approx({"conversions": 5 * 5 / 13, "value": 240 * 5 / 13})
    for channel in ("facebook", "google", "newsletter", "sms"):
        assert markov[channel] == pytest.approx({"conversions": 5 * 2 / 13, "value": 240 * 2 / 13})


def test_rule_models_over_the_archive_give_the_hand_split(archive: LocalArchive) -> None:
    body = analytics.attribute(reports.PathsSpec(**MARCH), archive, NOW).to_body()
    models = body["summary"]["models"]
    # Last touch: each order to its path's last channel; p5's unconverted path credits nothing.
    assert models["last_touch"] == {
        "email": {"conversions": 1.0, "value": 30.0},
        "facebook": {"conversions": 1.0, "value": 40.0},
        "google": {"conversions": 1.0, "value": 100.0},
        "newsletter": {"conversions": 1.0, "value": 50.0},
        "sms": {"conversions": 1.0, "value": 20.0},
    }
    # Linear: p4 email 1 (30); p3 email 4/5, newsletter 1/5 (of 50); p1 email 3/4, google 1/4 (of 100).
    assert _flat(models["linear"]) == _approx(
        {
            "email": {"conversions": 1 + 0.8 + 0.75, "value": 30 + 40 + 75},
            "facebook": {"conversions": 1.0, "value": 40.0},
            "google": {"conversions": 0.25, "value": 25.0},
            "newsletter": {"conversions": 0.2, "value": 10.0},
            "sms": {"conversions": 1.0, "value": 20.0},
        }
    )


def test_shapley_over_the_archive_splits_each_pair_evenly(archive: LocalArchive) -> None:
    # v(S) counts the paths whose channel set is inside S: a sum of one game per converting path,
    # each worth its path's figure to the channels of its set, shared evenly among them. {email},
    # {facebook}, {sms} take their own; {email, newsletter} (50) and {email, google} (100) split in two.
    body = analytics.attribute(reports.PathsSpec(**MARCH), archive, NOW, models=("shapley",)).to_body()
    assert _flat(body["summary"]["models"]["shapley"]) == _approx(
        {
            "email": {"conversions": 1 + 0.5 + 0.5, "value": 30 + 25 + 50},
            "facebook": {"conversions": 1.0, "value": 40.0},
            "google": {"conversions": 0.5, "value": 50.0},
            "newsletter": {"conversions": 0.5, "value": 25.0},
            "sms": {"conversions": 1.0, "value": 20.0},
        }
    )
    assert body["summary"]["removal_effects"] == {}


# ------------------------------------------------------------------ both dialects
@pytest.mark.parametrize(
    "spec",
    [
        reports.FunnelSpec(**MARCH, steps=STEPS, breakdown="plan"),
        reports.FunnelSpec(**MARCH, steps=STEPS, mode="strict"),
        reports.FunnelSpec(**MARCH, steps=STEPS, mode="any_order"),
        reports.RetentionSpec(**MARCH),
        reports.RetentionSpec(**MARCH, mode="on_or_after", cohort="first_order", unit="month"),
        reports.TrendsSpec(**MARCH, breakdown="plan"),
        reports.ChannelsSpec(**MARCH),
        reports.PerformanceSpec(**MARCH, origin_kind="campaign"),
        reports.ReviewSpec(of=date(2026, 3, 4)),
        reports.RoiSpec(**MARCH),
        reports.PathsSpec(**MARCH),
    ],
    ids=lambda s: s.report,
)
def test_the_report_sql_translates_to_trino_and_still_runs_on_duckdb(spec: object, archive: LocalArchive) -> None:
    query = reports.build(spec)  # type: ignore[arg-type]
    trino = to_trino(query.sql)
    check_parses(trino, "trino")
    assert "json_extract_string" not in trino.lower() and "strftime" not in trino.lower()
    assert archive.run(query).columns  # the DuckDB text itself runs


# ------------------------------------------------------------------ through S3
def test_the_same_answer_through_s3_objects(tmp_path: Path, archive: LocalArchive) -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="midstage-archive")
        remote = S3Archive("midstage-archive", "archive", tmp_path / "cache", client=client, threads=1)
        keys = remote.write(analytics_fixture.build(), "fixture")
        assert "archive/kind=event/dt=2026-03-04/fixture.parquet" in keys
        spec = reports.FunnelSpec(**MARCH, steps=STEPS)
        through_s3 = _run(spec, remote)  # type: ignore[arg-type]
    local = _run(spec, archive)
    assert through_s3["rows"] == local["rows"]
    assert through_s3["bytes_scanned"] == local["bytes_scanned"]


def test_the_s3_cache_follows_the_bucket_and_two_buckets_never_share_it(tmp_path: Path) -> None:
    spec = reports.TrendsSpec(**MARCH, events=["Product Viewed"])
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in ("archive-a", "archive-b"):
            client.create_bucket(Bucket=bucket)
        first = S3Archive("archive-a", "archive", tmp_path / "cache", client=client, threads=1)
        first.write(analytics_fixture.build(), "fixture")
        before = sum(r["events"] for r in _run(spec, first)["rows"])  # type: ignore[arg-type]
        # Another archive with the same cache directory sees only its own bucket (empty)
        other = S3Archive("archive-b", "archive", tmp_path / "cache", client=client, threads=1)
        assert _run(spec, other)["rows"] == []  # type: ignore[arg-type]
        # An object removed from the bucket (a compaction, a retention rule) leaves the cache too
        for item in client.list_objects_v2(Bucket="archive-a", Prefix="archive/kind=event/")["Contents"]:
            client.delete_object(Bucket="archive-a", Key=item["Key"])
        after = _run(spec, first)["rows"]  # type: ignore[arg-type]
    assert before > 0 and after == []


def test_a_spend_line_imported_again_replaces_the_earlier_copy_in_the_roi_cost(tmp_path: Path) -> None:
    store = LocalArchive(tmp_path, threads=1)
    store.write(analytics_fixture.build(), "fixture")
    # A corrected file a day later: Google's spring spend on Mar 2 was 75, not 60; a new line too
    corrected, problems = parse_spend_csv(
        "date,channel,campaign,amount,currency\n2026-03-02,google,spring,75,USD\n2026-03-03,google,spring,5,USD\n",
        archived_at=analytics_fixture.ARCHIVED + timedelta(days=1),
        source_id="spend-import-2",
    )
    assert not problems
    store.write(corrected, "correction")
    table = {(r["channel"], r["campaign"]): r for r in _run(reports.RoiSpec(**MARCH), store)["summary"]["table"]}
    assert table[("google", "spring")]["cost"] == 80  # 75 replaces 60, and 5 more
    assert table[("facebook", "retarget")]["cost"] == 10  # untouched by the second file
