"""`Experiments` over its ports (typed as Protocols): create, revise (frozen at start), start,
stop, assign, results, CSV, decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from midstage.errors import Conflict, ExperimentStateError, InvalidInput, NotFound, describe
from midstage.logic.experiments import lifecycle
from midstage.logic.experiments.assignment import Split, assign, in_global_control
from midstage.models.experiments import (
    Experiment,
    ExperimentBody,
    ExperimentResults,
    PhaseStatistics,
    WinnerDecision,
)
from midstage.models.messaging import _ID
from midstage.services.experiments.export import results_csv
from midstage.services.experiments.results import decide_winner, results


# ------------------------------------------------------------------------------ over ports
class ExperimentStore(Protocol):
    def find_experiment(self, experiment_id: str) -> Experiment | None: ...

    def save_experiment(self, experiment: Experiment, *, expected_version: int | None) -> bool:
        """Write `experiment` if the stored one has `expected_version` (None: only if none is
        stored); False when another writer got there first."""
        ...

    def list_experiments(self, limit: int, cursor: str | None) -> tuple[list[Experiment], str | None]:
        """A page in id order and the cursor of the next one (None at the end)."""
        ...


class StatisticsSource(Protocol):
    def phase_statistics(self, experiment: Experiment, phase: int) -> PhaseStatistics:
        """Exposures per arm and each metric's sums over the phase's exposed people."""
        ...


class ExposureLog(Protocol):
    def log_exposure(self, experiment_id: str, phase: int, unit_id: str, arm: str, at: datetime) -> None: ...


class DecisionLedger(Protocol):
    def final_decision(self, experiment_id: str, phase: int) -> WinnerDecision | None: ...

    def record_final(self, decision: WinnerDecision) -> bool:
        """Record the phase's final decision unless one is already recorded; True when this
        call recorded it."""
        ...


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a person stands in a running experiment's current phase."""

    experiment_id: str
    phase: int
    arm: str | None  # None: in the global control group, or the experiment is not running
    sends: bool  # False for the holdout arm, the global control group and a stopped experiment
    reason: str  # "arm", "holdout", "global_control" or "not_running"


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    decision: WinnerDecision
    first: bool  # this call recorded the final decision: only then is the remainder sent


class Experiments:
    """The experiments plane over its ports: create and revise (frozen at start), start and stop,
    assign and log exposures, results of a phase, the CSV of its sums, and the auto-winner's
    decision recorded once per phase. `global_control_share` is the share of everyone held out
    of all marketing; `global_control_salt` deals that group (changing it deals a new one)."""

    def __init__(
        self,
        store: ExperimentStore,
        statistics: StatisticsSource,
        exposures: ExposureLog,
        decisions: DecisionLedger,
        *,
        global_control_share: float = 0.0,
        global_control_salt: str = "",
    ) -> None:
        if not 0.0 <= global_control_share < 1.0:
            raise ValueError("the global control group's share lies in [0, 1)")
        self.store = store
        self.statistics = statistics
        self.exposures = exposures
        self.decisions = decisions
        self.global_control_share = global_control_share
        self.global_control_salt = global_control_salt

    def create(self, experiment_id: str, body: Any, now: datetime) -> Experiment:
        try:
            parsed = ExperimentBody.model_validate(body)
            experiment = Experiment.model_validate(
                {**parsed.model_dump(), "id": experiment_id, "created_at": now, "updated_at": now}
            )
        except ValidationError as error:
            raise InvalidInput(describe(error, "body")) from None
        if not self.store.save_experiment(experiment, expected_version=None):
            raise Conflict(f"experiment {experiment_id} already exists")
        return experiment

    def get(self, experiment_id: str) -> Experiment:
        # An id no experiment can have (the create model's pattern) is not looked up at all.
        experiment = self.store.find_experiment(experiment_id) if re.fullmatch(_ID, experiment_id) else None
        if experiment is None:
            raise NotFound(f"no experiment {experiment_id}")
        return experiment

    def list(self, limit: int, cursor: str | None) -> dict[str, Any]:
        found, after = self.store.list_experiments(limit, cursor)
        return {"experiments": [e.model_dump(mode="json") for e in found], "cursor": after}

    def _save(self, before: Experiment, after: Experiment) -> Experiment:
        if after is before:
            return after
        if not self.store.save_experiment(after, expected_version=before.version):
            raise Conflict(f"experiment {before.id} changed meanwhile; read it again and retry")
        return after

    def revise(self, experiment_id: str, body: Any, now: datetime, *, new_phase: bool = False) -> Experiment:
        current = self.get(experiment_id)
        try:
            proposed = ExperimentBody.model_validate(body)
        except ValidationError as error:
            raise InvalidInput(describe(error, "body")) from None
        return self._save(current, lifecycle.revise(current, proposed, now, new_phase=new_phase))

    def start(self, experiment_id: str, now: datetime) -> Experiment:
        current = self.get(experiment_id)
        return self._save(current, lifecycle.start(current, now))

    def stop(self, experiment_id: str, now: datetime) -> Experiment:
        current = self.get(experiment_id)
        return self._save(current, lifecycle.stop(current, now))

    def assign(self, experiment: Experiment, unit_id: str, now: datetime) -> Assignment:
        """The person's arm in the current phase (the surviving profile id after a merge), logged
        as an exposure when they are in an arm; the global control group gets no arm and nothing."""
        if experiment.status != "running":
            return Assignment(experiment.id, experiment.phase, None, False, "not_running")
        if experiment.global_control and in_global_control(
            unit_id, self.global_control_share, self.global_control_salt
        ):
            return Assignment(experiment.id, experiment.phase, None, False, "global_control")
        phase = experiment.phases[-1]
        arm = assign(Split.of([(a.id, a.weight) for a in phase.arms]), experiment.id, phase.number, unit_id)
        self.exposures.log_exposure(experiment.id, phase.number, unit_id, arm, now)
        holdout = next(a.holdout for a in phase.arms if a.id == arm)
        return Assignment(experiment.id, phase.number, arm, not holdout, "holdout" if holdout else "arm")

    def results(self, experiment_id: str, now: datetime, phase: int | None = None) -> ExperimentResults:
        experiment = self.get(experiment_id)
        number = self._phase_number(experiment, phase)
        return results(experiment, self.statistics.phase_statistics(experiment, number), now=now)

    def export_csv(self, experiment_id: str, phase: int | None = None) -> str:
        experiment = self.get(experiment_id)
        number = self._phase_number(experiment, phase)
        return results_csv(experiment, self.statistics.phase_statistics(experiment, number))

    def decide(self, experiment_id: str, now: datetime) -> RecordedDecision:
        """The auto-winner's decision on the current phase. A final decision (winner or control,
        the window over or a sequential verdict) is recorded once: a double-fired or redelivered
        call gets the recorded decision back with `first` False, so the remainder is sent once."""
        experiment = self.get(experiment_id)
        if experiment.auto_winner is None:
            raise ExperimentStateError(f"experiment {experiment_id} has no auto_winner rule")
        number = self._phase_number(experiment, None)
        recorded = self.decisions.final_decision(experiment_id, number)
        if recorded is not None:
            return RecordedDecision(recorded, False)
        decision = decide_winner(experiment, self.results(experiment_id, now, number), now=now)
        if decision.action == "wait":
            return RecordedDecision(decision, False)
        if self.decisions.record_final(decision):
            return RecordedDecision(decision, True)
        # Another call recorded one between our read and our write: that one stands.
        standing = self.decisions.final_decision(experiment_id, number)
        return RecordedDecision(standing or decision, False)

    def recorded_decision(self, experiment_id: str, phase: int | None = None) -> WinnerDecision:
        """The final decision recorded for a phase (the current one by default)."""
        experiment = self.get(experiment_id)
        number = self._phase_number(experiment, phase)
        recorded = self.decisions.final_decision(experiment_id, number)
        if recorded is None:
            raise NotFound(f"no final decision is recorded for phase {number} of experiment {experiment_id}")
        return recorded

    @staticmethod
    def _phase_number(experiment: Experiment, phase: int | None) -> int:
        if not experiment.phases:
            raise ExperimentStateError(f"experiment {experiment.id} has not started")
        if phase is not None and not 1 <= phase <= experiment.phase:
            raise InvalidInput(f"experiment {experiment.id} has no phase {phase}", code="invalid_query")
        return experiment.phase if phase is None else phase
