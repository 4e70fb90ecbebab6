"""An experiment on single messages: a rule's send action, a journey's send step or an API send
that names an experiment (`experiment`) is dealt an arm by the deliverer, per person.

The arm is drawn exactly as a campaign's (`assignment.assign` on the experiment's current phase
and the profile id, the survivor's after a merge), so a person gets the same arm on every send,
retry and redelivery. An arm's content says what it changes, in the message's terms:
`{"template": "<id>" | {"<channel>": "<id>"}, "vars": {...}}` (a subject line is a template, or a
variable the template reads); an arm without content sends the message as requested. The
holdout arm is exposed and sent nothing. An experiment that is not running (a draft, or
stopped) splits nobody: the message goes as requested.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from midstage.logic.experiments.assignment import Split, assign
from midstage.models.experiments import Experiment
from midstage.models.messaging import _ID, MessageRequest

__all__ = ["Dealt", "MessageArm", "content_problem", "dealt_arm", "message_arm", "with_arm"]

_CHANNELS = ("email", "sms", "push", "inbox")


@dataclass(frozen=True, slots=True)
class MessageArm:
    experiment_id: str
    phase: int
    arm: str
    holdout: bool
    template: str | dict[str, str] | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dealt:
    """An arm dealt to a person by a journey's random step: `phase` 0 when the experiment is not
    running (its control arm, and nobody exposed)."""

    experiment_id: str
    phase: int
    arm: str


def dealt_arm(experiment: Experiment, profile_id: str) -> Dealt:
    arm = message_arm(experiment, profile_id)
    if arm is None:
        return Dealt(experiment.id, 0, experiment.control_arm)
    return Dealt(experiment.id, arm.phase, arm.arm)


def content_problem(content: Mapping[str, Any] | None) -> str | None:
    """Why an arm's content cannot change a message, or None."""
    if not content:
        return None
    unknown = sorted(set(content) - {"template", "vars"})
    if unknown:
        return f"an arm's content for messages takes template and vars, not {', '.join(unknown)}"
    template = content.get("template")
    if template is not None:
        named = [template] if isinstance(template, str) else template if isinstance(template, dict) else None
        ids = list(named.values()) if isinstance(named, dict) else named
        if ids is None or not all(isinstance(t, str) and re.match(_ID, t) for t in ids):
            return "an arm's template is a template id, or one per channel"
        if isinstance(named, dict) and not set(named) <= set(_CHANNELS):
            return f"an arm's templates are given per channel ({', '.join(_CHANNELS)})"
    if not isinstance(content.get("vars", {}), dict):
        return "an arm's vars are an object"
    return None


def message_arm(experiment: Experiment, profile_id: str) -> MessageArm | None:
    """The person's arm in the experiment's current phase; None while it is not running."""
    if experiment.status != "running" or not experiment.phases:
        return None
    phase = experiment.phases[-1]
    drawn = assign(Split.of([(arm.id, arm.weight) for arm in phase.arms]), experiment.id, phase.number, profile_id)
    arm = next(arm for arm in phase.arms if arm.id == drawn)
    content = arm.content or {}
    return MessageArm(
        experiment_id=experiment.id,
        phase=phase.number,
        arm=arm.id,
        holdout=arm.holdout,
        template=content.get("template"),
        vars=content.get("vars") or {},
    )


def with_arm(request: MessageRequest, arm: MessageArm) -> MessageRequest:
    """The message as the arm sends it: its template in place of the requested one, its vars
    over the requested ones."""
    update: dict[str, Any] = {"vars": {**request.vars, **arm.vars}}
    if arm.template is not None:
        update["template"] = arm.template
    return request.model_copy(update=update)
