"""A campaign split by an experiment: who is in which arm, who waits for the winner, and what
the auto-winner's second send gives the rest. Pure: no I/O.

A campaign names an experiment (`experiment`) whose target is the campaign. Its arms are the
campaign's variants: an arm sends the variant with its id (or the one its content names as
`{"variant": "<id>"}`), and a campaign without variants sends its message in every arm but the
holdout. The experiment then decides, for each person in the audience, in this order:

1. the **global control group** (unless the experiment is on transactional messages) gets
   nothing and is not exposed: it measures the whole programme, not this test;
2. with an **auto-winner** rule, only `test_percent` of the audience is in the test (a hash of
   experiment, phase and person, salted apart from the arms'); the rest wait for the winner;
3. the arm, by `assignment.assign`: the holdout arm is exposed and sent nothing, every other arm
   is exposed and sent its variant.

The run records the experiment's phase when it starts, so every worker, retry and redelivery
of the run deals the same arms. The winner's run (`stage` "winner") sends the winning arm's
variant to the people who waited, and nothing to those who were in the test; its message keys
name its own run, so a person is messaged by the test or by the winner, never both, and a
double-fired or redelivered winner step sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from midstage.logic.conditions import Issue
from midstage.logic.experiments.assignment import Split, assign, in_global_control, unit_hash
from midstage.models.campaigns import CampaignBody, OnceSchedule
from midstage.models.experiments import Experiment, Phase

__all__ = [
    "WINNER_MARGIN",
    "Deal",
    "Placement",
    "deal_for",
    "experiment_issues",
    "variant_of_arm",
    "winner_time",
]

# The winner is judged this long after the test window ends: the archive the results read is
# fed through Firehose, which buffers up to 15 minutes before the last exposures land.
WINNER_MARGIN: Final = timedelta(minutes=20)
_SPACE: Final = 1 << 64

Stage = Literal["test", "winner"]
PlacementKind = Literal["global_control", "awaiting_winner", "in_test", "holdout", "arm", "winner"]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one person stands: `arm` is the arm dealt ("holdout" and "arm"), or the winning arm
    sent to them ("winner"); `variant` the campaign variant that arm sends (None: the message)."""

    kind: PlacementKind
    arm: str | None = None
    variant: str | None = None


@dataclass(frozen=True, slots=True)
class Deal:
    """One run's experiment: built once per run from the phase the run recorded."""

    experiment_id: str
    phase: int
    split: Split
    holdouts: frozenset[str]
    variants: Mapping[str, str | None]  # arm -> campaign variant id (None: the message itself)
    global_control_share: float  # 0 when the experiment does not leave the group out
    global_control_salt: str
    test_percent: float | None  # the auto-winner's test share; None: everyone is in the test
    stage: Stage = "test"
    winner: str | None = None  # the arm sent to the rest, in the winner stage

    def place(self, profile_id: str) -> Placement:
        if in_global_control(profile_id, self.global_control_share, self.global_control_salt):
            return Placement("global_control")
        tested = self.test_percent is None or _in_test(self, profile_id)
        if self.stage == "winner":
            if tested or self.winner is None:
                return Placement("in_test")
            return Placement("winner", self.winner, self.variants.get(self.winner))
        if not tested:
            return Placement("awaiting_winner")
        arm = assign(self.split, self.experiment_id, self.phase, profile_id)
        if arm in self.holdouts:
            return Placement("holdout", arm)
        return Placement("arm", arm, self.variants.get(arm))


def _in_test(deal: Deal, profile_id: str) -> bool:
    assert deal.test_percent is not None
    edge = int(deal.test_percent / 100 * _SPACE)
    return unit_hash("auto-winner-test", deal.experiment_id, deal.phase, profile_id) < edge


def variant_of_arm(arm_id: str, content: Mapping[str, object] | None, variant_ids: set[str]) -> str | None:
    """The campaign variant an arm sends: the one its content names, else the one with its id,
    else (a campaign without variants) the message itself."""
    named = content.get("variant") if content else None
    if isinstance(named, str):
        return named
    return arm_id if arm_id in variant_ids else None


def deal_for(
    campaign: CampaignBody,
    experiment: Experiment,
    phase: Phase,
    *,
    global_control_share: float,
    global_control_salt: str,
    stage: Stage = "test",
    winner: str | None = None,
) -> Deal:
    variant_ids = {variant.id for variant in campaign.variants or []}
    rule = experiment.auto_winner
    return Deal(
        experiment_id=experiment.id,
        phase=phase.number,
        split=Split.of([(arm.id, arm.weight) for arm in phase.arms]),
        holdouts=frozenset(arm.id for arm in phase.arms if arm.holdout),
        variants={arm.id: variant_of_arm(arm.id, arm.content, variant_ids) for arm in phase.arms if not arm.holdout},
        global_control_share=global_control_share if experiment.global_control else 0.0,
        global_control_salt=global_control_salt,
        test_percent=rule.test_percent if rule is not None else None,
        stage=stage,
        winner=winner,
    )


def experiment_issues(campaign_id: str, body: CampaignBody, experiment: Experiment | None) -> list[Issue]:
    """Why the experiment a campaign names cannot split it, located by JSON pointer."""
    if body.experiment is None:
        return []
    where = "/experiment"
    if experiment is None:
        return [Issue(where, f"no experiment {body.experiment!r}")]
    issues = []
    target = experiment.target
    if target.kind != "campaign" or target.id != campaign_id:
        issues.append(
            Issue(where, f"experiment {experiment.id!r} targets {target.kind} {target.id!r}, not this campaign")
        )
    if experiment.status == "stopped":
        issues.append(Issue(where, f"experiment {experiment.id!r} is stopped; start it again or name another"))
    if body.holdout_percent:
        issues.append(Issue("/holdout_percent", "a campaign split by an experiment holds out its holdout arm; set 0"))
    variant_ids = {variant.id for variant in body.variants or []}
    for i, arm in enumerate(experiment.arms):
        variant = None if arm.holdout else variant_of_arm(arm.id, arm.content, variant_ids)
        if variant is not None and variant not in variant_ids:
            issues.append(
                Issue(where, f"arm {arm.id!r} (arms/{i}) sends variant {variant!r}, which is not one of ours")
            )
        if not arm.holdout and variant is None and variant_ids:
            issues.append(Issue(where, f"arm {arm.id!r} (arms/{i}) names no variant: give it a variant's id"))
    if experiment.auto_winner is not None and not isinstance(body.schedule, OnceSchedule):
        issues.append(Issue("/schedule", "an auto-winner sends the winner to the rest once: use a once schedule"))
    return issues


def winner_time(test_at: datetime, experiment: Experiment) -> datetime | None:
    """When the winner's run is judged and sent: the test window after the test, plus the
    archive's buffering; None without an auto-winner rule."""
    rule = experiment.auto_winner
    if rule is None:
        return None
    return test_at + timedelta(hours=rule.window_hours) + WINNER_MARGIN
