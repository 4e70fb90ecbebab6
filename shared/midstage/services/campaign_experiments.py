"""Campaigns split by an experiment: the run starts the experiment, logs each person's arm, and
an auto-winner's second run sends the winning arm to the people who waited for it.

The winner's run is started by a second one-time schedule, made beside the campaign's when it
is scheduled (`logic.campaign_experiments.winner_time`). It judges the experiment's current
phase through `Experiments.decide`, which records a final decision once: a double-fired or
retried winner step gets the recorded decision back and starts the same run (its id is the
test run's with "-winner"), whose message keys name it, so nobody is sent the winner twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from midstage import keys
from midstage.errors import WinnerNotReady
from midstage.logic.experiments import lifecycle
from midstage.logic.timefmt import iso
from midstage.models.campaigns import Campaign
from midstage.models.experiments import Experiment
from midstage.observability import logger

if TYPE_CHECKING:
    from midstage.services.campaigns import CampaignRunner, Started
    from midstage.services.experiments.service import RecordedDecision

__all__ = ["ExperimentDocuments", "WinnerNotReady", "running_experiment", "start_winner"]

WINNER_SUFFIX = "-winner"


class ExperimentDocuments(Protocol):
    def find_experiment(self, experiment_id: str) -> Experiment | None: ...
    def save_experiment(self, experiment: Experiment, *, expected_version: int | None) -> bool: ...


class RunList(Protocol):
    def runs(self, campaign_id: str) -> list[dict[str, Any]]: ...


def running_experiment(
    experiments: ExperimentDocuments | None, experiment_id: str, now: datetime
) -> tuple[Experiment | None, str]:
    """The experiment that splits a run, started by its first run while still a draft; or None
    and why the run cannot go."""
    if experiments is None:
        return None, "experiments are not wired into this function"
    for _ in range(5):
        experiment = experiments.find_experiment(experiment_id)
        if experiment is None:
            return None, f"experiment {experiment_id} no longer exists"
        if experiment.status == "running":
            return experiment, ""
        if experiment.status == "stopped":
            return None, f"experiment {experiment_id} is stopped"
        started = lifecycle.start(experiment, now)
        if experiments.save_experiment(started, expected_version=experiment.version):
            return started, ""
    return None, f"experiment {experiment_id} kept changing while the run started it"


def start_winner(
    runner: CampaignRunner,
    runs: RunList,
    decide: Callable[[str, datetime], RecordedDecision],
    campaign_id: str,
    scheduled: datetime,
    now: datetime,
) -> Started:
    """Judge the campaign's test and send the winner (or control) to the people who waited."""
    from midstage.services.campaigns import Started

    campaign = runner.config.find_document(keys.CAMPAIGN_PK, campaign_id, Campaign)
    if campaign is None:
        return Started("", False, 0, "the campaign no longer exists")
    tests = [run for run in runs.runs(campaign_id) if run.get("stage") == "test" and run.get("awaits_winner")]
    if not tests:
        return Started("", False, 0, "the campaign has no test run waiting for a winner")
    test = max(tests, key=lambda run: str(run["run_id"]))
    run_id = f"{test['run_id']}{WINNER_SUFFIX}"
    existing = runner.runs.run(campaign_id, run_id)
    if existing is not None:
        return runner.launch(campaign, run_id, existing, now)  # a re-drive: the decision stands
    if campaign.status not in ("running", "scheduled"):
        return Started(run_id, False, 0, f"the campaign is {campaign.status}")
    if int(test["parts_done"]) < int(test["parts"]):
        raise WinnerNotReady(f"the test run {test['run_id']} is still sending")
    named: Mapping[str, Any] = test["experiment"]
    # The occurrence's time is the schedule's word that the window is over, even if this
    # container's clock lags it (as a released deferral is judged in delivery).
    now = max(now, scheduled)
    recorded = decide(str(named["id"]), now)
    decision = recorded.decision
    if decision.phase != int(named["phase"]):
        # The test's phase is over without a decision on it: nothing is sent to the rest, and the
        # campaign ends rather than wait for a winner that will not come.
        logger.warning("experiment moved to another phase", campaign=campaign_id, decision_phase=decision.phase)
        runner.complete(campaign_id)
        return Started(run_id, False, 0, f"experiment {named['id']} is in phase {decision.phase}, not the test's")
    if decision.action == "wait" or decision.arm is None:
        raise WinnerNotReady(f"the winner cannot be judged yet at {iso(now)}: {decision.explanation}")
    doc = {
        "campaign_id": campaign_id,
        "run_id": run_id,
        "version": campaign.version,
        "scheduled_at": iso(scheduled),
        "started_at": iso(now),
        "parts": int(test["parts"]),
        "stage": "winner",
        "winner_of": test["run_id"],
        "experiment": {"id": str(named["id"]), "phase": int(named["phase"])},
        "winner_arm": decision.arm,
        "decision": {"action": decision.action, "reason": decision.reason, "explanation": decision.explanation},
    }
    logger.info("campaign winner", campaign=campaign_id, run=run_id, arm=decision.arm, action=decision.action)
    return runner.launch(campaign, run_id, doc, now)
