"""POST /v1/experiments/analyze and /v1/experiments/plan through the real admin handler: the
answers are the statistics engine's (themselves checked against gbstats in the unit tier), the
documented examples are what the routes answer, and bad or hostile bodies are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from midstage.adapters.config_store import ConfigStore
from midstage.models.experiments import AnalyzeRequest, PlanRequest
from midstage.services.experiments.analysis import analyze, plan
from tests.integration.conftest import Stack
from tests.integration.test_admin_messaging import ROLES, Api

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
