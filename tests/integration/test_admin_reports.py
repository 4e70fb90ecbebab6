"""The reports and attribution routes of the admin API, through the real handler on moto: the
scripted month (tests/analytics_fixture.py) archived in an S3 bucket, each report route answering
what services.analytics computes over the same records (and the hand-worked figures of
tests/integration/test_reports.py), answers kept and recomputed on request, the engine refused
while unconfigured, and hostile bodies refused or answered exactly, never run as SQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from midstage.adapters.archive_engines import LocalArchive, S3Archive
from midstage.adapters.config_store import ConfigStore
from midstage.logic.analytics import reports
from midstage.logic.archive import records
from midstage.models.archive import ArchiveRecord
from midstage.services import analytics
from tests import analytics_fixture
from tests.integration.conftest import Stack
from tests.integration.test_admin_messaging import ROLES, Answer, Api
from tests.integration.test_reports import DAY, EXPECTED_PATHS, HOUR, MARCH, NOW, STEPS

BUCKET = "midstage-archive-test"
PREFIX = "archive/"
JSON_MARCH = {"start": "2026-03-01", "end": "2026-03-31"}


class MovingClock:
    """The admin function's clock, moved by the test (answers are kept until a time on it)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Reports:
    api: Api
    clock: MovingClock
    remote: S3Archive
    local: LocalArchive

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.api.post(path, body, role=kwargs.pop("role", "viewer"), **kwargs)

    def archive(self, extra: list[ArchiveRecord], batch: str) -> None:
        """More records in the bucket (and in the local reference archive alike)."""
        self.remote.write(extra, batch)
        self.local.write(extra, batch)


def _keys(stack: Stack) -> None:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=datetime.now(UTC))


def _admin(stack: Stack, monkeypatch: pytest.MonkeyPatch, clock: MovingClock, env: dict[str, str]) -> Api:
    admin = stack.load("AdminFunction", clock=clock)
    # Set after the template's environment: the function reads its settings on the first request.
    for name in ("ARCHIVE_BUCKET", "ARCHIVE_PREFIX", "ANALYTICS_ENGINE", "ATHENA_WORKGROUP", "ATHENA_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Api(stack, admin)


@pytest.fixture
def archived(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Reports]:
    # Given the scripted month written to a bucket as the archive lays it out, and the same
    # records in a local directory for the reference answers
    s3 = stack.clients.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    remote = S3Archive(BUCKET, PREFIX, tmp_path / "writer", client=s3, threads=1)
    remote.write(analytics_fixture.build(), "fixture")
    local = LocalArchive(tmp_path / "reference", threads=1)
    local.write(analytics_fixture.build(), "fixture")
    _keys(stack)
    clock = MovingClock(NOW)
    env = {"ARCHIVE_BUCKET": BUCKET, "ARCHIVE_PREFIX": PREFIX, "ANALYTICS_CACHE_DIR": str(tmp_path / "cache")}
    yield Reports(_admin(stack, monkeypatch, clock, env), clock, remote, local)
    local.close()


def _reference(spec: Any, local: LocalArchive) -> dict[str, Any]:
    return analytics.report(spec, local, NOW).to_body()


def _without_stamps(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in {"cached", "generated_at"}}


def _jsonable(body: dict[str, Any]) -> Any:
    """What the same body looks like after a trip through JSON (dates as text, tuples as lists)."""
    return json.loads(json.dumps(body, default=str))


# ------------------------------------------------------------------ every report, as the service computes it
REPORT_CASES = [
    ("funnel", {**JSON_MARCH, "steps": STEPS}, reports.FunnelSpec(**MARCH, steps=STEPS)),
    (
        "funnel",
        {**JSON_MARCH, "steps": STEPS, "mode": "any_order", "breakdown": "plan"},
        reports.FunnelSpec(**MARCH, steps=STEPS, mode="any_order", breakdown="plan"),
    ),
    (
        "retention",
        {**JSON_MARCH, "unit": "week", "periods": 4},
        reports.RetentionSpec(**MARCH, unit="week", periods=4),
    ),
    (
        "trends",
        {**JSON_MARCH, "events": ["Order Completed"], "unit": "week"},
        reports.TrendsSpec(**MARCH, events=["Order Completed"], unit="week"),
    ),
    ("channels", JSON_MARCH, reports.ChannelsSpec(**MARCH)),
    ("performance", {**JSON_MARCH, "unit": "month"}, reports.PerformanceSpec(**MARCH, unit="month")),
    ("review", {"period": "week", "of": "2026-03-04"}, reports.ReviewSpec(period="week", of=date(2026, 3, 4))),
    ("roi", JSON_MARCH, reports.RoiSpec(**MARCH)),
]


def test_each_report_route_answers_what_the_report_service_computes_over_the_same_archive(
    archived: Reports,
) -> None:
    for report, body, spec in REPORT_CASES:
        # When a viewer asks for the report through the admin API (DuckDB over the bucket's objects)
        answer = archived.post(f"/v1/reports/{report}", body)
        # Then it is the service's answer over the same records in a local directory, figure for figure
        assert answer.status == 200, (report, answer.body)
        assert _without_stamps(answer.body) == _jsonable(_reference(spec, archived.local)), report
        # And it says what it read, when, and that it was computed for this request
        assert answer["engine"] == "duckdb" and answer["bytes_scanned"] > 0, report
        assert answer["freshness"]["as_of"] == "2026-04-01T08:00:00.000Z", report
        assert (answer["cached"], answer["generated_at"]) == (False, "2026-04-01T08:00:00.000Z"), report


def test_the_report_routes_give_the_hand_worked_figures(archived: Reports) -> None:
    answer = archived.post("/v1/reports/funnel", {**JSON_MARCH, "steps": STEPS})
    steps = answer["summary"]["breakdowns"]["(all)"]
    # p1 V>A>O, p3 V>A>O, p5 V>A (test_reports.py works these out)
    assert [(s["step"], s["people"], s["median_seconds"]) for s in steps] == [
        (1, 5, 0.0),
        (2, 3, DAY),
        (3, 2, (3 * DAY + HOUR) / 2),
    ]
    assert answer["freshness"]["data_until"] == "2026-03-24T10:00:00.000Z"
    channels = archived.post("/v1/reports/channels", JSON_MARCH)
    assert [list(r.values()) for r in channels["rows"]][:2] == [
        ["(direct)", "(none)", "(none)", 0, 0, 2, 50],
        ["facebook", "social", "retarget", 1, 1, 1, 40],
    ]
    review = archived.post("/v1/reports/review", {"period": "month", "of": "2026-03-20"})
    current = review["summary"]["current"]
    assert (current["people"], current["orders"], current["revenue"], current["sent"]) == (6, 5, 240, 5)
    roi = archived.post("/v1/reports/roi", JSON_MARCH)
    email = {(r["channel"], r["campaign"]): r for r in roi["summary"]["table"]}[("email", "spring")]
    assert (email["incremental_revenue"], email["incremental_roas"], email["treated"], email["held_out"]) == (
        20,
        4,
        4,
        1,
    )


def test_the_attribution_route_runs_the_models_over_the_archive_paths(archived: Reports) -> None:
    # When the archive's paths are attributed with the default models
    answer = archived.post("/v1/reports/attribution", JSON_MARCH)
    # Then the answer is the service's, over the paths test_reports.py builds by hand
    assert answer.status == 200, answer.body
    spec = reports.PathsSpec(**MARCH)
    expected = analytics.attribute(spec, archived.local, NOW).to_body()
    assert _without_stamps(answer.body) == _jsonable(expected)
    assert answer["summary"]["paths"] == len(EXPECTED_PATHS)
    assert set(answer["summary"]["models"]) == {"last_touch", "linear", "markov"}
    # The chain solved by hand in test_reports.py: email 1/2, every other channel 1/5
    assert answer["summary"]["removal_effects"] == pytest.approx(
        {"email": 0.5, "facebook": 0.2, "google": 0.2, "newsletter": 0.2, "sms": 0.2}
    )
    # And a chosen model set is run as asked: Shapley splits each two-channel path evenly
    shapley = archived.post("/v1/reports/attribution", {**JSON_MARCH, "models": ["shapley"]})
    assert shapley["summary"]["models"]["shapley"]["google"] == pytest.approx({"conversions": 0.5, "value": 50.0})
    assert shapley["summary"]["removal_effects"] == {}


# ------------------------------------------------------------------ the cache
def _late_order(name: str = "Order Completed", message_id: str = "m-late", **properties: Any) -> list[ArchiveRecord]:
    body, profile = analytics_fixture.event(
        "p7", name, analytics_fixture.at(10, 10), message_id=message_id, **properties
    )
    return [records.event_record(body, profile, analytics_fixture.ARCHIVED + timedelta(hours=1))]


def _orders(answer: Answer) -> list[tuple[str, int]]:
    return [(r["period"], r["events"]) for r in answer["rows"]]


def test_an_answer_is_kept_until_it_expires_and_no_cache_computes_it_again(archived: Reports) -> None:
    body = {**JSON_MARCH, "events": ["Order Completed"], "unit": "week"}
    first = archived.post("/v1/reports/trends", body)
    assert first["cached"] is False and _orders(first)[1] == ("2026-03-09", 1)
    # Given an order archived after the first answer
    archived.archive(_late_order(revenue=5), "late")
    archived.clock.now = NOW + timedelta(seconds=60)
    # When the same report is asked again, in other words (defaults spelled out, keys reordered)
    again = archived.post("/v1/reports/trends", {"unit": "week", "breakdown": None, "report": "trends", **body})
    # Then the kept answer comes back, as it was, saying so
    assert again["cached"] is True and again["generated_at"] == first["generated_at"]
    assert _without_stamps(again.body) == _without_stamps(first.body)
    # When the caller asks for it fresh
    fresh = archived.post("/v1/reports/trends", body, headers={"cache-control": "no-cache"})
    # Then it is computed now and sees the late order
    assert fresh["cached"] is False and fresh["generated_at"] == "2026-04-01T08:01:00.000Z"
    assert _orders(fresh)[1] == ("2026-03-09", 2)
    assert fresh["freshness"]["archived_until"] == "2026-04-01T01:05:00.000Z"
    # And the fresh answer is the one kept from then on, until ANALYTICS_CACHE_SECONDS (300) pass
    archived.clock.now = NOW + timedelta(seconds=359)
    assert archived.post("/v1/reports/trends", body)["generated_at"] == "2026-04-01T08:01:00.000Z"
    archived.clock.now = NOW + timedelta(seconds=360)
    expired = archived.post("/v1/reports/trends", body)
    assert expired["cached"] is False and expired["generated_at"] == "2026-04-01T08:06:00.000Z"


def test_another_report_or_another_request_is_not_answered_from_the_cache(archived: Reports) -> None:
    archived.post("/v1/reports/trends", {**JSON_MARCH, "unit": "week"})
    other_unit = archived.post("/v1/reports/trends", {**JSON_MARCH, "unit": "month"})
    assert other_unit["cached"] is False and other_unit["rows"][0]["period"] == "2026-03-01"
    attribution = archived.post("/v1/reports/attribution", JSON_MARCH)
    other_models = archived.post("/v1/reports/attribution", {**JSON_MARCH, "models": ["linear"]})
    assert attribution["cached"] is False and other_models["cached"] is False
    assert set(other_models["summary"]["models"]) == {"linear"}


# ------------------------------------------------------------------ who may ask
def test_reports_need_an_api_key_and_the_viewer_role_suffices(archived: Reports) -> None:
    # viewer is the lowest rank: there is no key below it to refuse, only no key or a wrong one
    for path in ("/v1/reports/trends", "/v1/attribution/analyze"):
        anonymous = archived.post(path, JSON_MARCH, role=None)
        assert (anonymous.status, anonymous["code"]) == (401, "unauthorized")
        unknown = archived.api.post(path, JSON_MARCH, role=None, headers={"x-api-key": "msk_nobody"})
        assert (unknown.status, unknown["code"]) == (401, "unauthorized")
    for role in ROLES:
        assert archived.post("/v1/reports/trends", JSON_MARCH, role=role).status == 200


# ------------------------------------------------------------------ the engine's settings
def test_reports_are_refused_while_the_engine_is_not_configured_or_cannot_read_the_bucket(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _keys(stack)
    # Given an admin function with no archive bucket
    api = _admin(stack, monkeypatch, MovingClock(NOW), {})
    # Then a report is refused as not configured, naming the setting
    refused = api.post("/v1/reports/funnel", {**JSON_MARCH, "steps": STEPS}, role="viewer")
    assert (refused.status, refused["code"]) == (503, "analytics_not_configured")
    assert "ARCHIVE_BUCKET" in refused["message"] and refused.headers.get("retry-after") == "1"
    # And a bad body is still refused for what it is, before the engine is looked for
    assert api.post("/v1/reports/funnel", {"steps": STEPS}, role="viewer").status == 400
    # And analyze, which needs no archive, runs
    paths = {"paths": [{"channels": ["email"], "conversions": 1}], "models": ["last_touch"]}
    assert api.post("/v1/attribution/analyze", paths, role="viewer").status == 200
    # Given Athena chosen without its workgroup and database
    api = _admin(stack, monkeypatch, MovingClock(NOW), {"ANALYTICS_ENGINE": "athena", "ARCHIVE_BUCKET": BUCKET})
    refused = api.post("/v1/reports/trends", JSON_MARCH, role="viewer")
    assert (refused.status, refused["code"]) == (503, "analytics_not_configured")
    assert "ATHENA_WORKGROUP" in refused["message"] and "ATHENA_DATABASE" in refused["message"]
    # Given a bucket that does not exist
    env = {"ARCHIVE_BUCKET": "no-such-bucket", "ANALYTICS_CACHE_DIR": str(tmp_path)}
    api = _admin(stack, monkeypatch, MovingClock(NOW), env)
    answer = api.post("/v1/reports/trends", JSON_MARCH, role="viewer")
    assert (answer.status, answer["code"]) == (503, "analytics_unavailable")
    assert answer.headers.get("retry-after") == "1"


# ------------------------------------------------------------------ hostile bodies
NOT_OBJECTS = [
    ('{"start": "2026-03-01", "end": ', "invalid_json"),
    ("[1, 2]", "invalid_body"),
    ("null", "invalid_body"),
    ("", "empty_body"),
    ('{"start": "2026-03-01", "end": "2026-03-31", "steps": ' + "[" * 100 + "]" * 100 + "}", "too_deeply_nested"),
]
BAD_SPECS = [
    ("funnel", {**JSON_MARCH, "steps": "Product Viewed"}, "steps"),
    ("funnel", {**JSON_MARCH, "steps": [{"event": 5}, {"event": ["x"]}]}, "event"),
    ("funnel", {"start": 20260301, "end": "2026-03-31", "steps": STEPS}, "start"),
    ("funnel", {"start": "2026-03-31", "end": "2026-03-01", "steps": STEPS}, "end is before start"),
    ("trends", {"start": "2025-01-01", "end": "2026-03-31"}, "at most 400 days"),
    ("funnel", {**JSON_MARCH, "steps": [{"event": "Product Viewed"}] * 11}, "steps"),
    ("funnel", {**JSON_MARCH, "steps": [{"event": f"e{i}"} for i in range(5000)]}, "steps"),
    ("funnel", {**JSON_MARCH, "steps": STEPS, "window_days": 366}, "window_days"),
    ("funnel", {**JSON_MARCH, "steps": STEPS, "breakdown": "plan' OR 1=1 --"}, "breakdown"),
    ("funnel", {**JSON_MARCH, "steps": STEPS, "breakdown": "a..b"}, "breakdown"),
    ("trends", {**JSON_MARCH, "events": ["x"] * 21}, "events"),
    ("funnel", {**JSON_MARCH, "steps": STEPS, "report": "retention"}, "report"),
    ("channels", {**JSON_MARCH, "sql": "SELECT 1"}, "sql"),
    ("review", {"period": "year", "of": "2026-03-04"}, "period"),
    ("attribution", {**JSON_MARCH, "models": ["time_decay"]}, "models"),
    ("attribution", {**JSON_MARCH, "models": []}, "models"),
    ("review", {"period": "week", "of": "0001-01-03"}, "calendar"),
    ("trends", {"start": "9999-12-01", "end": "9999-12-31"}, "calendar"),
    ("channels", {"start": "0001-01-05", "end": "0001-01-06"}, "calendar"),
]


def test_a_report_request_that_is_not_one_the_report_takes_is_refused_with_where_and_why(archived: Reports) -> None:
    for raw, code in NOT_OBJECTS:
        answer = archived.api.post("/v1/reports/funnel", role="viewer", raw=raw)
        assert (answer.status, answer["code"]) == (400, code), raw[:40]
    for route, body, fragment in BAD_SPECS:
        answer = archived.post(f"/v1/reports/{route}", body)
        assert (answer.status, answer["code"]) == (400, "invalid_body"), (route, fragment, answer.body)
        assert fragment in answer["message"] + json.dumps(answer.body.get("issues")), (route, fragment)
        assert answer["issues"] and all({"location", "message"} <= set(i) for i in answer["issues"])
    too_large = archived.post("/v1/reports/trends", {**JSON_MARCH, "padding": "x" * 300_000})
    assert (too_large.status, too_large["code"]) == (413, "body_too_large")


SQLISH = [
    "x' OR '1'='1",
    "Order Completed' --",
    "a\\'; DROP TABLE archive; --",
    "'); SELECT * FROM archive; --",
    'Order Completed" OR "1"="1',
]


def test_sql_in_event_names_and_property_values_is_a_name_like_any_other(archived: Reports) -> None:
    for name in SQLISH:
        # When event names and property values carry SQL, the reports count events of that name: none
        trends = archived.post(
            "/v1/reports/trends", {**JSON_MARCH, "events": [name, "Order Completed"], "unit": "month"}
        )
        assert trends.status == 200, trends.body
        assert [(r["event"], r["events"]) for r in trends["rows"]] == [("Order Completed", 5)], name
        steps = [{"event": "Product Viewed", "where": {"plan": name}}, {"event": name}]
        funnel = archived.post("/v1/reports/funnel", {**JSON_MARCH, "steps": steps})
        assert funnel.status == 200 and funnel["rows"] == [] and funnel["summary"] == {"breakdowns": {}}, name
        retention = archived.post("/v1/reports/retention", {**JSON_MARCH, "return_event": name, "unit": "month"})
        assert [(r["period"], r["people"]) for r in retention["rows"]] == [(p, 0) for p in range(8)], name
        roi = archived.post("/v1/reports/roi", {**JSON_MARCH, "conversion_event": name, "holdout_variant": name})
        assert roi.status == 200 and all(r["incremental_revenue"] is None for r in roi["summary"]["table"]), name
    # Given events whose names and properties hold quotes and SQL are archived
    for number, name in enumerate(SQLISH):
        archived.archive(_late_order(name, f"m-sqlish-{number}", plan=name), f"sqlish-{number}")
    # Then each is counted as itself, once, and a breakdown keeps its value whole
    body = {**JSON_MARCH, "events": SQLISH, "unit": "month", "breakdown": "plan"}
    answer = archived.post("/v1/reports/trends", body, headers={"cache-control": "no-cache"})
    assert sorted((r["event"], r["breakdown"], r["events"]) for r in answer["rows"]) == sorted(
        (name, name, 1) for name in SQLISH
    )


# ------------------------------------------------------------------ POST /v1/attribution/analyze
TEXTBOOK = [
    {"channels": ["c1", "c2", "c3"], "conversions": 1, "nulls": 0, "value": 100.0},
    {"channels": ["c1"], "conversions": 0, "nulls": 1},
    {"channels": ["c2", "c3"], "conversions": 0, "nulls": 1},
]


def test_analyze_gives_the_textbook_markov_credits_and_removal_effects_over_http(archived: Reports) -> None:
    # Given AnalyzeCore's walk-through: c1>c2>c3 converts, c1 and c2>c3 do not
    body = {"paths": TEXTBOOK, "models": ["first_touch", "last_touch", "linear", "markov", "shapley"]}
    # When a viewer posts it
    answer = archived.post("/v1/attribution/analyze", body)
    # Then Markov gives exactly 0.2 / 0.4 / 0.4 of the conversion and removal effects 0.5 / 1 / 1
    assert answer.status == 200, answer.body
    assert answer["models"]["markov"] == {
        "c1": {"conversions": 0.2, "value": 20.0},
        "c2": {"conversions": 0.4, "value": 40.0},
        "c3": {"conversions": 0.4, "value": 40.0},
    }
    assert answer["removal_effects"] == {"c1": 0.5, "c2": 1.0, "c3": 1.0}
    nothing = {"conversions": 0.0, "value": 0.0}
    assert answer["models"]["first_touch"] == {"c1": {"conversions": 1.0, "value": 100.0}, "c2": nothing, "c3": nothing}
    shapley = {(c, figure): v for c, k in answer["models"]["shapley"].items() for figure, v in k.items()}
    assert shapley == pytest.approx(
        {(c, f): v for c in ("c1", "c2", "c3") for f, v in (("conversions", 1 / 3), ("value", 100 / 3))}
    )
    assert answer["totals"] == {"conversions": 1.0, "value": 100.0, "nulls": 2.0}
    # And as the issue words it (c2>c3 converting too): the same shares of two conversions
    paths = [TEXTBOOK[0], TEXTBOOK[1], {"channels": ["c2", "c3"], "conversions": 1, "value": 100.0}]
    worded = archived.post("/v1/attribution/analyze", {"paths": paths, "models": ["markov"]})
    assert {c: k["conversions"] for c, k in worded["models"]["markov"].items()} == {"c1": 0.4, "c2": 0.8, "c3": 0.8}
    assert worded["removal_effects"] == {"c1": 0.5, "c2": 1.0, "c3": 1.0}
    # And Shapley past fifteen channels (the closed form) still adds up to the total
    channels = [f"ch{i:02d}" for i in range(18)]
    many = [{"channels": channels[i : i + 3], "conversions": 1, "value": 10.0} for i in range(16)]
    wide = archived.post("/v1/attribution/analyze", {"paths": many, "models": ["shapley", "linear"]})
    assert wide.status == 200, wide.body
    for model in ("shapley", "linear"):
        assert sum(k["conversions"] for k in wide["models"][model].values()) == pytest.approx(16)


ANALYZE_REFUSALS = [
    ({"paths": []}, "invalid_body", "paths"),
    ({"paths": TEXTBOOK, "models": ["magic"]}, "invalid_body", "models"),
    ({"paths": [{"channels": ["a"], "conversions": -3}]}, "invalid_body", "conversions"),
    ({"paths": [{"channels": ["a"], "nulls": "five"}]}, "invalid_body", "nulls"),
    ({"paths": [{"channels": ["a>b"], "conversions": 1}]}, "invalid_body", "channel name"),
    ({"paths": [{"channels": ["a"], "conversions": 1}], "models": ["time_decay"]}, "invalid_body", "days_before"),
    ({"paths": TEXTBOOK, "surprise": 1}, "invalid_body", "surprise"),
    (
        {"paths": [{"channels": [f"c{i}", f"d{i}"], "conversions": 1} for i in range(40)], "models": ["markov"]},
        "too_many_states",
        "80 states",
    ),
    (
        {
            "paths": [{"channels": ["a"], "conversions": 1e308}, {"channels": ["b"], "conversions": 1e308}],
            "models": ["markov", "linear"],
        },
        "unanswerable_paths",
        "",
    ),
]


def test_analyze_refuses_paths_it_cannot_take_with_a_reason(archived: Reports) -> None:
    for body, code, fragment in ANALYZE_REFUSALS:
        answer = archived.post("/v1/attribution/analyze", body)
        assert (answer.status, answer["code"]) == (400, code), (fragment, answer.body)
        assert fragment in answer["message"] + json.dumps(answer.body.get("issues")), fragment
    paths = [{"channels": ["email", "sms"], "conversions": 1, "nulls": 1, "value": 1.5}] * 110_000
    too_large = archived.post("/v1/attribution/analyze", {"paths": paths})
    assert (too_large.status, too_large["code"]) == (413, "body_too_large")
