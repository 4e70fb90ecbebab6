"""/v1/experiments through the real admin handler on moto.

The stateless routes (analyze, plan): the answers are the statistics engine's (themselves checked
against gbstats in the unit tier), the documented examples are what the routes answer, and bad or
hostile bodies are refused. The stored resource: create, start, a frozen change refused (409)
then made as a new phase, stop; listing by pages; results and the CSV read from an archive in S3
with scripted counts; optimistic versions and the final decision recorded once under
concurrency (DynamoDB's conditional writes); bad requests refused with a code, changing nothing."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from midstage.adapters.archive_engines import LocalArchive, S3Archive
from midstage.adapters.archive_stream import NoArchive
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.experiment_store import ArchiveExposures, ExperimentTable
from midstage.errors import Conflict
from midstage.logic.archive import records
from midstage.models.archive import ArchiveRecord
from midstage.models.experiments import AnalyzeRequest, PlanRequest
from midstage.services.experiments import Experiments, analyze_requests_from_csv
from midstage.services.experiments.analysis import analyze, plan
from midstage.services.experiments.sources import ArchiveStatistics
from tests.integration.conftest import Stack
from tests.integration.test_admin_messaging import ROLES, Api
from tests.integration.test_admin_reports import MovingClock, _admin, _keys
from tests.integration.test_experiments_archive_sums import event as archived_event
from tests.support.concurrency import race

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
TWO_ARMS = {
    "metric_type": "proportion",
    "variants": [
        {"id": "control", "n": 5000, "sum": 500, "sum_squares": 500},
        {"id": "b", "n": 5000, "sum": 560, "sum_squares": 560},
    ],
}


@pytest.fixture
def api(stack: Stack) -> Api:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=datetime.now(UTC))
    return Api(stack, stack.load("AdminFunction"))


def documented_examples(path: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(request, answer) for each example name the request and the 200 answer share."""
    operation = yaml.safe_load(OPENAPI.read_text())["paths"][path]["post"]
    asked = operation["requestBody"]["content"]["application/json"]["examples"]
    answered = operation["responses"]["200"]["content"]["application/json"]["examples"]
    return [(asked[name]["value"], answered[name]["value"]) for name in asked if name in answered]


def test_given_each_engine_then_the_route_answers_what_the_statistics_engine_computes(api: Api) -> None:
    for engine in ("bayesian", "frequentist", "sequential"):
        for difference in ("relative", "absolute"):
            body = {**TWO_ARMS, "engine": engine, "difference": difference}
            answer = api.post("/v1/experiments/analyze", body, role="viewer")
            assert answer.status == 200, answer.body
            assert answer.body == analyze(AnalyzeRequest.model_validate(body)).to_body()


def test_the_documented_examples_are_what_the_routes_answer(api: Api) -> None:
    for path in ("/v1/experiments/analyze", "/v1/experiments/plan"):
        examples = documented_examples(path)
        assert examples, path
        for request, documented in examples:
            answer = api.post(path, request, role="viewer")
            assert (answer.status, answer.body) == (200, documented), (path, request)


def test_given_a_tampered_split_then_the_srm_alert_is_raised(api: Api) -> None:
    body = {**TWO_ARMS, "weights": [0.5, 0.5]}
    body["variants"] = [{**body["variants"][0]}, {"id": "b", "n": 4500, "sum": 460, "sum_squares": 460}]
    answer = api.post("/v1/experiments/analyze", body, role="viewer")
    assert answer.status == 200 and answer.body["srm_alert"] is True and answer.body["srm_p_value"] < 0.001


def test_the_planner_answers_what_the_planning_service_computes(api: Api) -> None:
    body = {"metric_type": "mean", "baseline": 42.0, "stddev": 30.0, "n_per_arm": 4000, "engine": "sequential"}
    answer = api.post("/v1/experiments/plan", body, role="viewer")
    assert answer.status == 200
    assert answer.body == plan(PlanRequest.model_validate(body)).model_dump(mode="json")


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/experiments/analyze", {"metric_type": "mean", "variants": TWO_ARMS["variants"][:1]}, 400, "invalid_body"),
        (
            "/v1/experiments/analyze",
            {"metric_type": "mean", "variants": [{"id": "a", "n": 10, "sum": 1}, {"id": "b", "n": 10, "sum": 2}]},
            400,
            "invalid_body",
        ),
        ("/v1/experiments/analyze", {**TWO_ARMS, "engine": "magic"}, 400, "invalid_body"),
        ("/v1/experiments/analyze", {**TWO_ARMS, "surprise": 1}, 400, "invalid_body"),
        ("/v1/experiments/analyze", [TWO_ARMS], 400, "invalid_body"),
        ("/v1/experiments/plan", {"metric_type": "proportion", "baseline": 0.1}, 400, "invalid_body"),
        (
            "/v1/experiments/plan",
            {"metric_type": "proportion", "baseline": 0.1, "effect": 0.1, "stddev": 1},
            400,
            "invalid_body",
        ),
    ],
)
def test_bad_bodies_are_refused_with_a_code(api: Api, path: str, body: Any, status: int, code: str) -> None:
    answer = api.post(path, body, role="viewer")
    assert (answer.status, answer.body["code"]) == (status, code), answer.body
    assert answer.body["message"]


def test_hostile_bodies_are_refused_and_a_key_is_needed(api: Api) -> None:
    for raw, code in (('{"metric_type": ', "invalid_json"), ("[" * 200 + "]" * 200, "too_deeply_nested")):
        answer = api.call("POST", "/v1/experiments/analyze", raw=raw, role="viewer")
        assert (answer.status, answer.body["code"]) == (400, code)
    oversized = {**TWO_ARMS, "variants": [{**v, "id": "x" * 300_000} for v in TWO_ARMS["variants"]]}
    assert api.post("/v1/experiments/analyze", oversized, role="viewer").status == 413
    assert api.post("/v1/experiments/analyze", TWO_ARMS, role=None).status == 401


# ------------------------------------------------------------------------------ the stored resource
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ARCHIVE_BUCKET = "midstage-archive-experiments"


def experiment_body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Black Friday subject lines",
        "target": {"kind": "campaign", "id": "black-friday"},
        "arms": [
            {"id": "control", "weight": 45, "content": {"variant": "a"}},
            {"id": "b", "weight": 45, "content": {"variant": "b"}},
            {"id": "holdout", "weight": 10, "holdout": True},
        ],
        "goal": "purchase",
        "metrics": [
            {"id": "purchase", "kind": "conversion", "event": "Order Completed"},
            {"id": "revenue", "kind": "mean", "event": "Order Completed", "value": "revenue"},
            {"id": "unsubscribe", "kind": "conversion", "event": "Unsubscribed", "guardrail": True, "inverse": True},
        ],
    }
    return {**base, **changes}


@dataclass
class Plane:
    api: Api
    clock: MovingClock
    archive: S3Archive

    def at(self, moment: datetime) -> None:
        self.clock.now = moment


@pytest.fixture
def plane(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Plane:
    s3 = stack.clients.client("s3")
    s3.create_bucket(Bucket=ARCHIVE_BUCKET)
    remote = S3Archive(ARCHIVE_BUCKET, "archive/", tmp_path / "writer", client=s3, threads=1)
    _keys(stack)
    clock = MovingClock(START)
    env = {"ARCHIVE_BUCKET": ARCHIVE_BUCKET, "ARCHIVE_PREFIX": "archive/", "ANALYTICS_CACHE_DIR": str(tmp_path / "c")}
    return Plane(_admin(stack, monkeypatch, clock, env), clock, remote)


def test_create_start_revise_frozen_new_phase_stop(plane: Plane) -> None:
    api = plane.api
    # Given a draft experiment
    created = api.post("/v1/experiments", {"id": "bf-subjects", **experiment_body()}, role="marketer")
    assert created.status == 201, created.body
    assert (created["status"], created["version"], created["phases"]) == ("draft", 1, [])
    assert api.get("/v1/experiments/bf-subjects", role="viewer").body == created.body
    # When it starts
    plane.at(START + timedelta(hours=1))
    started = api.post("/v1/experiments/bf-subjects/start", role="marketer")
    assert started.status == 200 and started["status"] == "running" and started["version"] == 2
    assert [p["number"] for p in started["phases"]] == [1]
    # Then a change to its weights is refused, naming the frozen part, and nothing is written
    reweighted = experiment_body(
        arms=[{**arm, "weight": 30} if arm["id"] == "b" else arm for arm in experiment_body()["arms"]]
    )
    refused = api.put("/v1/experiments/bf-subjects", reweighted, role="marketer")
    assert (refused.status, refused["code"]) == (409, "experiment_frozen") and "arms" in refused["message"]
    assert api.get("/v1/experiments/bf-subjects", role="viewer").body == started.body
    # But a new name is applied in place
    renamed = api.put("/v1/experiments/bf-subjects", experiment_body(name="BF (EU)"), role="marketer")
    assert renamed.status == 200 and renamed["name"] == "BF (EU)" and len(renamed["phases"]) == 1
    # And the same reweighting asked as a new phase closes phase 1 and opens phase 2
    plane.at(START + timedelta(days=1))
    phased = api.put("/v1/experiments/bf-subjects", reweighted, role="marketer", query={"new_phase": "true"})
    assert phased.status == 200, phased.body
    assert [p["number"] for p in phased["phases"]] == [1, 2]
    assert phased["phases"][0]["ended_at"] == "2026-12-02T09:00:00Z"
    assert [a["weight"] for a in phased["phases"][1]["arms"]] == [45, 30, 10]
    # When it stops, it cannot stop again
    stopped = api.post("/v1/experiments/bf-subjects/stop", role="marketer")
    assert stopped.status == 200 and stopped["status"] == "stopped"
    again = api.post("/v1/experiments/bf-subjects/stop", role="marketer")
    assert (again.status, again["code"]) == (409, "invalid_state")
    # And a stopped experiment changes freely
    assert api.put("/v1/experiments/bf-subjects", experiment_body(), role="marketer").status == 200


def test_listing_pages_through_every_experiment_in_id_order(plane: Plane) -> None:
    api = plane.api
    ids = [f"exp-{n:02d}" for n in range(7)]
    for experiment_id in reversed(ids):
        assert api.post("/v1/experiments", {"id": experiment_id, **experiment_body()}, role="marketer").status == 201
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/experiments", role="viewer", query=query)
        assert page.status == 200 and len(page["experiments"]) <= 3
        seen += [e["id"] for e in page["experiments"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == ids


def scripted_phase(experiment_id: str, at: datetime) -> tuple[list[ArchiveRecord], dict[str, tuple[int, int, float]]]:
    """Exposures and purchases with known counts per arm: (units, buyers, revenue)."""
    plan = {"control": (40, 8, 30.0), "b": (40, 14, 30.0), "holdout": (10, 1, 30.0)}
    made: list[ArchiveRecord] = []
    for arm, (units, buyers, price) in plan.items():
        for n in range(units):
            person = f"{arm}-{n}"
            seen = at + timedelta(minutes=n)
            made.append(
                records.exposure(
                    experiment_id=experiment_id, variant=arm, profile_id=person, at=seen, archived_at=seen, phase=1
                )
            )
            if n < buyers:
                made.append(archived_event(person, "Order Completed", seen + timedelta(hours=3), n, price))
    # Bought too late (after the 72 h window): not counted.
    made.append(archived_event("b-39", "Order Completed", at + timedelta(hours=80), 99, 500.0))
    return made, {arm: (units, buyers, buyers * price) for arm, (units, buyers, price) in plan.items()}


def test_results_and_csv_read_the_phase_from_the_archive(plane: Plane) -> None:
    api = plane.api
    assert api.post("/v1/experiments", {"id": "bf", **experiment_body()}, role="marketer").status == 201
    early = api.get("/v1/experiments/bf/results", role="viewer")
    assert (early.status, early["code"]) == (409, "invalid_state")  # never started: no phase to read
    started_at = START + timedelta(hours=1)
    plane.at(started_at)
    assert api.post("/v1/experiments/bf/start", role="marketer").status == 200
    nobody_yet = api.get("/v1/experiments/bf/results", role="viewer")
    assert nobody_yet.status == 200 and [a["units"] for a in nobody_yet["arms"]] == [0, 0, 0]
    made, expected = scripted_phase("bf", started_at + timedelta(minutes=5))
    plane.archive.write(made, "scripted")
    # When the results are read two days in
    plane.at(START + timedelta(days=2))
    answer = api.get("/v1/experiments/bf/results", role="viewer")
    assert answer.status == 200, answer.body
    # Then the SRM check comes first, the arms' units and every metric's sums are the scripted ones
    assert list(answer.body)[:4] == ["experiment_id", "phase", "computed_at", "srm"]
    assert {a["id"]: a["units"] for a in answer["arms"]} == {arm: v[0] for arm, v in expected.items()}
    purchase = next(m for m in answer["metrics"] if m["metric"] == "purchase")
    means = {arm["id"]: arm["mean"] for arm in purchase["arms"]}
    assert means == pytest.approx({arm: buyers / units for arm, (units, buyers, _) in expected.items()})
    assert {len(purchase[engine]) for engine in ("bayesian", "frequentist", "sequential")} == {2}
    assert answer["days_to_decision"] is not None  # still running
    # And the CSV holds the raw sums, which the analyze route turns into the same answers
    exported = api.get("/v1/experiments/bf/export", role="viewer")
    assert exported.status == 200 and exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.body)))
    revenue = {row["arm_id"]: float(row["sum"]) for row in rows if row["metric_id"] == "revenue"}
    assert revenue == {arm: value for arm, (_, _, value) in expected.items()}
    requests = analyze_requests_from_csv(exported.body)
    again = api.post(
        "/v1/experiments/analyze",
        requests["purchase"].model_copy(update={"engine": "frequentist"}).model_dump(mode="json"),
        role="viewer",
    )
    assert again.status == 200
    assert [v["p_value"] for v in again["variants"]] == [v["p_value"] for v in purchase["frequentist"]]
    # A phase it does not have, or a phase that is not a number, is refused
    for route, phase in (("results", "2"), ("export", "2"), ("export", "x"), ("results", "0"), ("results", "²")):
        refused = api.get(f"/v1/experiments/bf/{route}", role="viewer", query={"phase": phase})
        assert (refused.status, refused["code"]) == (400, "invalid_query"), (route, phase, refused.body)


def test_concurrent_edits_of_one_version_keep_every_write_that_won(stack: Stack) -> None:
    # Six editors (each its own function instance: one handler serves one request at a time)
    # revise the same version at once: each write is conditioned on the version it read.
    table = ExperimentTable(stack.output("DataTableName"), client=stack.clients.dynamodb())

    def plane_of() -> Experiments:
        return Experiments(
            table, ArchiveStatistics(lambda: LocalArchive("."), lambda: START), ArchiveExposures(NoArchive()), table
        )

    plane_of().create("edited", experiment_body(), START)

    def edit(n: int) -> str:
        try:
            return plane_of().revise("edited", experiment_body(name=f"name {n}"), START).name
        except Conflict:
            return "conflict"

    names = race(6, edit)
    won = [name for name in names if name != "conflict"]
    assert won  # someone always wins
    final = plane_of().get("edited")
    assert final.version == 1 + len(won) and final.name in won


def test_the_final_decision_is_recorded_once_under_concurrency(stack: Stack, tmp_path: Path) -> None:
    # Given a running experiment with an auto-winner rule whose window is over, its phase archived
    table = ExperimentTable(stack.output("DataTableName"), client=stack.clients.dynamodb())
    local = tmp_path / "archive"
    made, _ = scripted_phase("auto", START + timedelta(minutes=5))
    LocalArchive(local, threads=1).write(made, "scripted")
    after = START + timedelta(days=4)

    def plane_of() -> Experiments:
        statistics = ArchiveStatistics(lambda: LocalArchive(local, threads=1), lambda: after)
        return Experiments(table, statistics, ArchiveExposures(NoArchive()), table)

    rule = {"rule": "chance_to_win", "window_hours": 24, "min_units_per_arm": 8}
    plane_of().create("auto", experiment_body(auto_winner=rule), START)
    plane_of().start("auto", START)
    # When eight workers decide at once
    decided = race(8, lambda n: plane_of().decide("auto", after))
    # Then exactly one recorded it, and every one got the same decision back
    assert sum(d.first for d in decided) == 1
    assert len({d.decision.model_dump_json() for d in decided}) == 1
    assert decided[0].decision.final and decided[0].decision.action in ("send_winner", "send_control")
    assert table.final_decision("auto", 1) == decided[0].decision
    assert plane_of().decide("auto", after + timedelta(hours=1)).first is False  # redelivered: nothing again


def test_the_decision_route_records_once_and_the_recorded_one_is_read_back(plane: Plane) -> None:
    api = plane.api
    rule = {"rule": "chance_to_win", "window_hours": 24, "min_units_per_arm": 8}
    assert (
        api.post("/v1/experiments", {"id": "auto", **experiment_body(auto_winner=rule)}, role="marketer").status == 201
    )
    assert api.post("/v1/experiments", {"id": "manual", **experiment_body()}, role="marketer").status == 201
    assert api.post("/v1/experiments/auto/start", role="marketer").status == 200
    assert api.post("/v1/experiments/manual/start", role="marketer").status == 200
    made, _ = scripted_phase("auto", START + timedelta(minutes=5))
    plane.archive.write(made, "scripted")
    # Before the window ends the chance-to-win rule waits, and nothing is recorded
    plane.at(START + timedelta(hours=2))
    waiting = api.post("/v1/experiments/auto/decide", role="marketer")
    assert waiting.status == 200 and waiting["decision"]["action"] == "wait" and waiting["first"] is False
    assert api.get("/v1/experiments/auto/decision", role="viewer").status == 404
    # When the window is over the decision is final and recorded by the first call only
    plane.at(START + timedelta(days=2))
    first = api.post("/v1/experiments/auto/decide", role="marketer")
    assert first.status == 200 and first["first"] is True and first["decision"]["final"] is True
    again = api.post("/v1/experiments/auto/decide", role="marketer")
    assert again["first"] is False and again["decision"] == first["decision"]
    recorded = api.get("/v1/experiments/auto/decision", role="viewer", query={"phase": "1"})
    assert recorded.status == 200 and recorded.body == first["decision"]
    # An experiment without a rule has nothing to decide
    refused = api.post("/v1/experiments/manual/decide", role="marketer")
    assert (refused.status, refused["code"]) == (409, "invalid_state")
    assert api.post("/v1/experiments/auto/decide", role="viewer").status == 403


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "status", "code"),
    [
        ("POST", "/v1/experiments", experiment_body(), None, 400, "invalid_body"),  # no id
        ("POST", "/v1/experiments", {"id": "Bad Id", **experiment_body()}, None, 400, "invalid_body"),
        ("POST", "/v1/experiments", {"id": "x", **experiment_body(goal="nope")}, None, 400, "invalid_body"),
        ("POST", "/v1/experiments", {"id": "x", **experiment_body(arms=[])}, None, 400, "invalid_body"),
        ("POST", "/v1/experiments", {"id": "x", **experiment_body(surprise=1)}, None, 400, "invalid_body"),
        ("POST", "/v1/experiments", [experiment_body()], None, 400, "invalid_body"),
        ("PUT", "/v1/experiments/known", {"name": "only a name"}, None, 400, "invalid_body"),
        ("PUT", "/v1/experiments/known", experiment_body(), {"new_phase": "yes"}, 400, "invalid_query"),
        ("GET", "/v1/experiments", None, {"limit": "0"}, 400, "invalid_limit"),
        ("GET", "/v1/experiments", None, {"cursor": "é" * 3}, 400, "invalid_cursor"),
        ("GET", "/v1/experiments/known/results", None, {"phase": "-1"}, 400, "invalid_query"),
        ("GET", "/v1/experiments/unknown", None, None, 404, "not_found"),
        ("GET", "/v1/experiments/" + "x" * 2000, None, None, 404, "not_found"),
        ("POST", "/v1/experiments/unknown/start", None, None, 404, "not_found"),
        ("POST", "/v1/experiments", {"id": "known", **experiment_body()}, None, 409, "conflict"),
    ],
)
def test_bad_requests_are_refused_with_a_code(
    plane: Plane, method: str, path: str, body: Any, query: dict[str, str] | None, status: int, code: str
) -> None:
    assert plane.api.post("/v1/experiments", {"id": "known", **experiment_body()}, role="marketer").status == 201
    answer = plane.api.call(method, path, body, role="marketer", query=query)
    assert (answer.status, answer.body["code"]) == (status, code), answer.body
    assert plane.api.get("/v1/experiments/known", role="viewer")["version"] == 1  # nothing else changed


def test_reads_need_a_viewer_and_writes_a_marketer(plane: Plane) -> None:
    api = plane.api
    assert api.post("/v1/experiments", {"id": "roles", **experiment_body()}, role="viewer").status == 403
    assert api.post("/v1/experiments", {"id": "roles", **experiment_body()}, role="marketer").status == 201
    assert api.post("/v1/experiments/roles/start", role="viewer").status == 403
    assert api.get("/v1/experiments/roles", role=None).status == 401
    assert api.get("/v1/experiments/roles", role="viewer").status == 200
