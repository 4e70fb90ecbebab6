"""/v1/experiments: experiments as a stored resource (create, list, read, revise, frozen at start
unless a new phase is asked for, start, stop, results, the CSV of their raw sums), and the
statistics engine over summary statistics given in the body, so a test run anywhere (or exported
from here) can be checked, and the sample-size planner; those two are stateless."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.errors import InvalidInput
from midstage.models.admin import RoleRank

# A few hundred variants' statistics are a few kilobytes: the bound is generous, not tight.
MAX_ANALYZE_BODY_BYTES = 256 * 1024
MAX_PHASE = 10_000

routes = Routes()


@routes.post("/analyze", role=RoleRank.viewer)
def analyze_statistics() -> Response[Any]:
    # Imported on first use: the engines (scipy-free, but not small) load only for this route.
    from midstage.models.experiments import AnalyzeRequest
    from midstage.services.experiments.analysis import analyze

    request = routes.body(AnalyzeRequest, MAX_ANALYZE_BODY_BYTES)
    return json_answer(200, analyze(request).to_body())


@routes.post("/plan", role=RoleRank.viewer)
def plan_sample_size() -> Response[Any]:
    from midstage.models.experiments import PlanRequest
    from midstage.services.experiments.analysis import plan

    request = routes.body(PlanRequest, MAX_ANALYZE_BODY_BYTES)
    return json_answer(200, plan(request).model_dump(mode="json"))


# ------------------------------------------------------------------------------ the resource
def _new_phase() -> bool:
    raw = routes.query("new_phase")
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise InvalidInput("'new_phase' must be true or false", code="invalid_query")


def _phase() -> int | None:
    raw = routes.query("phase")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PHASE:
        raise InvalidInput(f"'phase' must be a whole number from 1 to {MAX_PHASE}", code="invalid_query")
    return int(raw)


@routes.get("/", role=RoleRank.viewer)
def list_experiments() -> Response[Any]:
    return json_answer(200, routes.services.experiments.list(routes.limit(), routes.cursor()))


@routes.post("/", role=RoleRank.marketer)
def create_experiment() -> Response[Any]:
    from midstage.models.experiments import ExperimentCreate

    request = routes.body(ExperimentCreate)
    body = request.model_dump(exclude={"id"})
    experiment = routes.services.experiments.create(request.id, body, routes.services.clock())
    return json_answer(201, experiment.model_dump(mode="json"))


@routes.get("/<experiment_id>", role=RoleRank.viewer)
def get_experiment(experiment_id: str) -> Response[Any]:
    return json_answer(200, routes.services.experiments.get(experiment_id).model_dump(mode="json"))


@routes.put("/<experiment_id>", role=RoleRank.marketer)
def revise_experiment(experiment_id: str) -> Response[Any]:
    from midstage.models.experiments import ExperimentBody

    new_phase = _new_phase()
    body = routes.body(ExperimentBody).model_dump()
    revised = routes.services.experiments.revise(experiment_id, body, routes.services.clock(), new_phase=new_phase)
    return json_answer(200, revised.model_dump(mode="json"))


@routes.post("/<experiment_id>/start", role=RoleRank.marketer)
def start_experiment(experiment_id: str) -> Response[Any]:
    started = routes.services.experiments.start(experiment_id, routes.services.clock())
    return json_answer(200, started.model_dump(mode="json"))


@routes.post("/<experiment_id>/stop", role=RoleRank.marketer)
def stop_experiment(experiment_id: str) -> Response[Any]:
    stopped = routes.services.experiments.stop(experiment_id, routes.services.clock())
    return json_answer(200, stopped.model_dump(mode="json"))


@routes.get("/<experiment_id>/results", role=RoleRank.viewer)
def experiment_results(experiment_id: str) -> Response[Any]:
    phase = _phase()
    answer = routes.services.experiments.results(experiment_id, routes.services.clock(), phase)
    return json_answer(200, answer.model_dump(mode="json"))


@routes.get("/<experiment_id>/export", role=RoleRank.viewer)
def export_experiment(experiment_id: str) -> Response[Any]:
    phase = _phase()
    text = routes.services.experiments.export_csv(experiment_id, phase)
    return Response(status_code=200, content_type="text/csv; charset=utf-8", body=text)


@routes.post("/<experiment_id>/decide", role=RoleRank.marketer)
def decide_experiment(experiment_id: str) -> Response[Any]:
    """The auto-winner rule judged on the current phase now. A final decision is recorded once
    (`first` says whether this call recorded it); nothing is sent from here."""
    decided = routes.services.experiments.decide(experiment_id, routes.services.clock())
    return json_answer(200, {"decision": decided.decision.model_dump(mode="json"), "first": decided.first})


@routes.get("/<experiment_id>/decision", role=RoleRank.viewer)
def recorded_decision(experiment_id: str) -> Response[Any]:
    phase = _phase()
    decision = routes.services.experiments.recorded_decision(experiment_id, phase)
    return json_answer(200, decision.model_dump(mode="json"))
