"""Campaigns split by an experiment, against moto: the runner starts the experiment and records
its phase in the run, workers deal each person by the experiment's hash (the global control
group and the holdout sent nothing), exposures carry the arm and phase, and an auto-winner's
second run sends the winner to the people who waited, once, however often it is started.

Every expectation is worked out person by person with `deal_for` and `plan_recipient`, so a
count is exact or the test fails. The auto-winner's decision is taken by the real experiments
service and recorded in the real decision ledger; only the phase's sums, which the archive
query gives in production (held to a person-by-person count in test_experiments_archive_sums),
are counted here from the exposures the workers put and a scripted conversion rule.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage.adapters.experiment_store import ExperimentTable
from midstage.logic.campaign_experiments import WINNER_MARGIN, deal_for
from midstage.logic.campaigns import plan_recipient, run_id_for
from midstage.logic.experiments.lifecycle import revise
from midstage.models.campaigns import Campaign
from midstage.models.experiments import ArmMetricStatistics, Experiment, PhaseStatistics
from midstage.models.profile import Profile
from midstage.services.campaign_experiments import start_winner
from midstage.services.campaigns import CampaignRunner, CampaignWorker
from midstage.services.experiments import Experiments
from tests.integration.conftest import Stack
from tests.integration.test_campaign_runs import (  # noqa: F401 - the template fixture is autouse here too
    Rig,
    VirtualClock,
    campaign,
    make_rig,
    population,
    template_read_once,
)
from tests.support.fakes import MemoryArchive

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RUN = run_id_for(NOW)
SHARE, SALT = 0.1, "programme-2026"
TRUE_RATES = {"a": 0.10, "b": 0.60}  # the scripted chance that a person exposed to an arm converts


def experiment(**changes: Any) -> Experiment:
    body: dict[str, Any] = {
        "id": "winter-subjects",
        "name": "Winter subject lines",
        "target": {"kind": "campaign", "id": "winter-sale"},
        "arms": [
            {"id": "a", "weight": 45},
            {"id": "b", "weight": 45},
            {"id": "holdout", "weight": 10, "holdout": True},
        ],
        "goal": "purchase",
        "metrics": [{"id": "purchase", "kind": "conversion", "event": "Order Completed"}],
        "created_at": NOW - timedelta(days=1),
        "updated_at": NOW - timedelta(days=1),
    }
    return Experiment.model_validate({**body, **changes})


def split_campaign() -> Campaign:
    return campaign(holdout_percent=0, experiment="winter-subjects")


def worker(rig: Rig, table: ExperimentTable, archive: MemoryArchive) -> CampaignWorker:
    clock = VirtualClock()
    return CampaignWorker(
        rig.config,
        rig.runs,
        rig.profiles,
        rig.deliveries,
        rig.timers,
        rig.touches,
        rig.parts_queue,
        sleep=clock.sleep,
        clock=clock.now,
        archive=archive,
        experiments=table,
        global_control=(SHARE, SALT),
    )


def converts(profile_id: str, arm: str) -> bool:
    draw = int.from_bytes(hashlib.sha256(profile_id.encode()).digest()[:4], "big") / 2**32
    return draw < TRUE_RATES.get(arm, 0.0)


class ExposureSums:
    """The statistics port over the exposures the workers put (the archive's rows)."""

    def __init__(self, archive: MemoryArchive) -> None:
        self.archive = archive

    def phase_statistics(self, experiment: Experiment, phase: int) -> PhaseStatistics:
        arms: dict[str, str] = {}
        for record in self.archive.records:
            if record.kind == "experiment_exposure" and record.experiment_id == experiment.id:
                arms.setdefault(record.profile_id, record.variant)
        units = Counter(arms.values())
        hits = Counter(arm for person, arm in arms.items() if converts(person, arm))
        ids = [arm.id for arm in experiment.arms]
        return PhaseStatistics(
            experiment_id=experiment.id,
            phase=phase,
            exposures={arm: units[arm] for arm in ids},
            metrics={"purchase": [ArmMetricStatistics(arm=arm, sum=hits[arm], sum_squares=hits[arm]) for arm in ids]},
        )


def live(people: Iterable[Profile]) -> list[Profile]:
    return [person for person in people if not person.merged_into]


@pytest.fixture
def rig(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Rig:
    return make_rig(stack, monkeypatch)


@pytest.fixture
def table(rig: Rig) -> ExperimentTable:
    return ExperimentTable(rig.profiles.table, client=rig.stack.clients.dynamodb())


def test_given_a_split_campaign_when_run_then_each_person_gets_their_arm_and_the_holdout_and_control_nothing(
    rig: Rig, table: ExperimentTable
) -> None:
    assert table.save_experiment(experiment(), expected_version=None)
    rig.define(split_campaign())
    people = population(600)
    rig.store(people)
    archive = MemoryArchive()

    started = CampaignRunner(rig.config, rig.runs, rig.parts_queue, parts=4, experiments=table).start(
        "winter-sale", NOW, NOW
    )

    assert (started.created, started.parts_queued, started.skipped) == (True, 4, "")
    target = rig.campaign("winter-sale")  # the version the workers read (starting it made a new one)
    running = table.find_experiment("winter-subjects")
    assert running is not None and running.status == "running" and running.phase == 1  # started by its first run
    run = rig.runs.run("winter-sale", RUN)
    assert run is not None and run["experiment"] == {"id": "winter-subjects", "phase": 1} and not run["awaits_winner"]
    outcomes = [rig.work(message, worker(rig, table, archive)) for message in rig.part_messages()]
    assert {o.state for o in outcomes} == {"done"}

    deal = deal_for(target, running, running.phases[-1], global_control_share=SHARE, global_control_salt=SALT)
    planned = {p.id: plan_recipient(target, p, RUN, NOW, deal=deal) for p in live(people)}
    sends = {pid: r for pid, r in planned.items() if r.decision == "send"}
    sent = rig.delivered()
    assert {r.key: r for r in sent} == {r.request.key: r.request for r in sends.values() if r.request}
    assert {r.profile_id: r.origin.step for r in sent} == {pid: r.arm for pid, r in sends.items()}
    decided = Counter(r.decision for r in planned.values() if r.decision != "not_in_audience")
    assert {"send", "held_out", "global_control"} <= set(decided)
    totals = rig.totals("winter-sale")
    for decision in ("held_out", "global_control"):
        assert totals[decision] == decided[decision]
    assert totals["queued"] == decided["send"] == len(sent)
    # The experiment's exposures: one per person dealt an arm, holdout included, in phase 1;
    # the global control group is neither sent nor exposed.
    exposed = {
        r.profile_id: r.variant
        for r in archive.records
        if r.kind == "experiment_exposure" and r.experiment_id == "winter-subjects"
    }
    assert exposed == {pid: r.arm for pid, r in planned.items() if r.arm is not None}
    assert all(r.record_id for r in archive.records)
    assert rig.campaign("winter-sale").status == "completed"


def test_given_an_auto_winner_when_the_window_ends_then_the_winner_goes_to_the_rest_once_however_often_started(
    rig: Rig, table: ExperimentTable
) -> None:
    rule = {"rule": "chance_to_win", "test_percent": 40, "window_hours": 24, "min_units_per_arm": 8}
    assert table.save_experiment(experiment(auto_winner=rule), expected_version=None)
    rig.define(split_campaign())
    people = population(800)
    rig.store(people)
    archive = MemoryArchive()
    runner = CampaignRunner(rig.config, rig.runs, rig.parts_queue, parts=4, experiments=table)
    runner.start("winter-sale", NOW, NOW)
    for message in rig.part_messages():
        rig.work(message, worker(rig, table, archive))
    test_sent = {r.profile_id: r for r in rig.delivered()}
    # The test is over, but the campaign waits for its winner.
    assert rig.campaign("winter-sale").status == "running"
    assert rig.totals("winter-sale")["awaiting_winner"] > 0

    experiments = Experiments(table, ExposureSums(archive), ExposureLogNone(), table)
    later = NOW + timedelta(hours=24) + WINNER_MARGIN
    winner_runs = [
        start_winner(runner, rig.runs, experiments.decide, "winter-sale", later, later + timedelta(seconds=n))
        for n in range(3)  # the schedule fired twice, and a retry
    ]

    assert [(w.run_id, w.created) for w in winner_runs] == [(f"{RUN}-winner", True)] + [(f"{RUN}-winner", False)] * 2
    recorded = experiments.recorded_decision("winter-subjects")
    assert (recorded.action, recorded.arm, recorded.reason) == ("send_winner", "b", "winner")
    messages = rig.part_messages()
    assert {m["part"] for m in messages} == {0, 1, 2, 3}
    for message in messages + messages:  # every part message delivered twice
        rig.work(message, worker(rig, table, archive), at=later)
    winners = rig.delivered()
    assert len({r.key for r in winners}) == len(winners)  # nobody twice
    assert {r.origin.step for r in winners} == {"b"}
    assert not set(test_sent) & {r.profile_id for r in winners}  # the test's people are not sent again
    target = rig.campaign("winter-sale")
    running = table.find_experiment("winter-subjects")
    assert running is not None
    deal = deal_for(target, running, running.phases[-1], global_control_share=SHARE, global_control_salt=SALT)
    waited = {p.id for p in live(people) if "churned" not in p.segments and p.segments.keys() & {"vip", "newsletter"}}
    waited = {pid for pid in waited if deal.place(pid).kind == "awaiting_winner"}
    assert {r.profile_id for r in winners} == waited
    assert all(r.key.startswith(f"campaign:winter-sale:{RUN}-winner:") for r in winners)
    assert rig.campaign("winter-sale").status == "completed"
    run = rig.runs.run("winter-sale", f"{RUN}-winner")
    assert run is not None and run["winner_arm"] == "b" and run["decision"]["reason"] == "winner"


class ExposureLogNone:
    """The exposure port of `Experiments.assign`, which campaign runs do not call."""

    def log_exposure(self, experiment_id: str, phase: int, unit_id: str, arm: str, at: datetime) -> None:
        raise AssertionError("campaign runs log exposures through their archive sink")


def test_given_a_stopped_experiment_when_the_run_starts_then_nothing_is_sent_and_why_is_said(
    rig: Rig, table: ExperimentTable
) -> None:
    stopped = experiment().model_copy(update={"status": "stopped"})
    assert table.save_experiment(stopped, expected_version=None)
    rig.define(split_campaign())
    rig.store(population(40))

    started = CampaignRunner(rig.config, rig.runs, rig.parts_queue, parts=4, experiments=table).start(
        "winter-sale", NOW, NOW
    )

    assert (started.created, started.parts_queued) == (False, 0)
    assert started.skipped == "experiment winter-subjects is stopped"
    assert rig.part_messages() == [] and rig.runs.runs("winter-sale") == []


def test_given_a_new_phase_during_the_test_when_the_winner_step_comes_then_nothing_is_sent_and_the_campaign_ends(
    rig: Rig, table: ExperimentTable
) -> None:
    rule = {"rule": "chance_to_win", "test_percent": 40, "window_hours": 24, "min_units_per_arm": 8}
    assert table.save_experiment(experiment(auto_winner=rule), expected_version=None)
    rig.define(split_campaign())
    rig.store(population(80))
    archive = MemoryArchive()
    runner = CampaignRunner(rig.config, rig.runs, rig.parts_queue, parts=4, experiments=table)
    runner.start("winter-sale", NOW, NOW)
    for message in rig.part_messages():
        rig.work(message, worker(rig, table, archive))
    rig.delivered()
    running = table.find_experiment("winter-subjects")
    assert running is not None
    moved = revise(running, experiment(auto_winner={**rule, "test_percent": 50}), NOW, new_phase=True)
    assert table.save_experiment(moved, expected_version=running.version)

    experiments = Experiments(table, ExposureSums(archive), ExposureLogNone(), table)
    later = NOW + timedelta(hours=24) + WINNER_MARGIN
    started = start_winner(runner, rig.runs, experiments.decide, "winter-sale", later, later)

    assert (started.created, started.parts_queued) == (False, 0)
    assert "not the test's" in started.skipped
    assert rig.part_messages() == [] and rig.delivered() == []
    assert rig.campaign("winter-sale").status == "completed"
