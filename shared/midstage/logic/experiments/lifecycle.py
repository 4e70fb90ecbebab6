"""An experiment's life: draft, running (in phases), stopped; and the frozen-at-start rule.

While an experiment runs, what decides who gets what and how the winner is judged is frozen:
the arms (ids, weights, holdout, content), the control arm, the target, whether the global
control group is left out, the goal metric's definition, the guardrails' definitions, alpha,
the sequential tuning parameter and the auto-winner rule. Changing any of them under a running
experiment would mix units treated one way with units treated another in one analysis (Braze's
"compromised" test), or move the goalposts after a peek. So such a change is refused unless a
new phase is asked for; a new phase closes the current one and starts another with its own
analysis (and, the phase being part of the assignment hash, its own deal of units to arms).
Name, description, secondary metrics, corrections and the planning inputs may change at any
time: they change what is read, not what was done.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from midstage.errors import ExperimentFrozen as ExperimentFrozen
from midstage.errors import ExperimentStateError as ExperimentStateError
from midstage.models.experiments import Experiment, ExperimentBody, Phase

__all__ = ["FROZEN", "ExperimentFrozen", "ExperimentStateError", "frozen_changes", "revise", "start", "stop"]

# Every part of the body that decides who gets what or how a winner is judged; "goal" and
# "guardrails" stand for the metrics' definitions, not only their ids (a goal renamed to another
# event is another goal).
FROZEN: Final = (
    "arms",
    "control",
    "target",
    "global_control",
    "goal",
    "guardrails",
    "alpha",
    "sequential_tuning_parameter",
    "auto_winner",
)


def _design(body: ExperimentBody) -> dict[str, Any]:
    plain = body.model_dump(
        mode="json", include={"arms", "target", "global_control", "alpha", "sequential_tuning_parameter", "auto_winner"}
    )
    design = {
        **plain,
        "control": body.control_arm,
        "goal": body.goal_metric.model_dump(mode="json"),
        "guardrails": sorted(
            (metric.model_dump(mode="json") for metric in body.metrics if metric.guardrail), key=lambda m: m["id"]
        ),
    }
    return {name: design[name] for name in FROZEN}


def frozen_changes(current: ExperimentBody, proposed: ExperimentBody) -> list[str]:
    """The frozen parts `proposed` changes, by name (empty when it changes none)."""
    before, after = _design(current), _design(proposed)
    return [name for name in before if before[name] != after[name]]


def _body_of(experiment: Experiment) -> dict[str, Any]:
    return experiment.model_dump(include=set(ExperimentBody.model_fields))


def start(experiment: Experiment, now: datetime) -> Experiment:
    """Start (or restart after a stop) a new phase; starting a running experiment changes nothing."""
    if experiment.status == "running":
        return experiment
    return _with_new_phase(experiment, now)


def stop(experiment: Experiment, now: datetime) -> Experiment:
    if experiment.status != "running":
        raise ExperimentStateError(f"experiment {experiment.id} is {experiment.status}, not running")
    phases = [*experiment.phases[:-1], experiment.phases[-1].model_copy(update={"ended_at": now})]
    return experiment.model_copy(
        update={"status": "stopped", "phases": phases, "version": experiment.version + 1, "updated_at": now}
    )


def revise(experiment: Experiment, proposed: ExperimentBody, now: datetime, *, new_phase: bool = False) -> Experiment:
    """The experiment with `proposed` applied. Under a running experiment a change to a frozen
    part needs `new_phase`, and then starts one; anything else is applied in place."""
    changed = frozen_changes(experiment, proposed) if experiment.status == "running" else []
    if changed and not new_phase:
        raise ExperimentFrozen(
            f"experiment {experiment.id} is running, so its {', '.join(changed)} cannot change;"
            " ask for a new phase (analysed on its own) or stop it first"
        )
    revised = Experiment.model_validate(
        {**_body_of(experiment), **proposed.model_dump(), **_identity(experiment), "updated_at": now}
    )
    if changed:
        return _with_new_phase(revised, now)
    return revised.model_copy(update={"version": experiment.version + 1})


def _identity(experiment: Experiment) -> dict[str, Any]:
    return {
        "id": experiment.id,
        "status": experiment.status,
        "version": experiment.version,
        "phases": experiment.phases,
        "created_at": experiment.created_at,
    }


def _with_new_phase(experiment: Experiment, now: datetime) -> Experiment:
    phases = list(experiment.phases)
    if phases and phases[-1].ended_at is None:
        phases[-1] = phases[-1].model_copy(update={"ended_at": now})
    phases.append(
        Phase(
            number=len(phases) + 1,
            started_at=now,
            arms=list(experiment.arms),
            control=experiment.control_arm,
            target=experiment.target,
        )
    )
    return experiment.model_copy(
        update={"status": "running", "phases": phases, "version": experiment.version + 1, "updated_at": now}
    )
