"""A campaign split by an experiment (logic.campaign_experiments and plan_recipient's `deal`):
who is in the global control group, the test share, each arm and the holdout; what the winner's
run gives the rest; and the campaign definitions an experiment cannot split, refused with where."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage.logic.campaign_experiments import WINNER_MARGIN, deal_for, experiment_issues, winner_time
from midstage.logic.campaigns import plan_recipient
from midstage.logic.experiments.assignment import in_global_control
from midstage.logic.experiments.lifecycle import start
from midstage.models.campaigns import Campaign
from midstage.models.experiments import Experiment
from midstage.models.profile import Profile

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ENTERED = "2026-11-01T00:00:00.000Z"


def campaign(**changes: Any) -> Campaign:
    body: dict[str, Any] = {
        "id": "spring-sale",
        "name": "Spring sale",
        "audience": {"segments": ["vip"]},
        "message": {"channels": ["email"], "template": "spring", "vars": {"discount": 10}},
        "variants": [{"id": "a", "percent": 50}, {"id": "b", "percent": 50, "vars": {"discount": 20}}],
        "schedule": {"type": "once", "at": "2026-12-01T09:00:00Z"},
        "experiment": "spring-subjects",
        "status": "scheduled",
    }
    return Campaign.model_validate({**body, **changes})


def experiment(**changes: Any) -> Experiment:
    body: dict[str, Any] = {
        "id": "spring-subjects",
        "name": "Spring subjects",
        "target": {"kind": "campaign", "id": "spring-sale"},
        "arms": [
            {"id": "control", "weight": 45, "content": {"variant": "a"}},
            {"id": "b", "weight": 45},
            {"id": "holdout", "weight": 10, "holdout": True},
        ],
        "goal": "purchase",
        "metrics": [{"id": "purchase", "kind": "conversion", "event": "Order Completed"}],
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Experiment.model_validate({**body, **changes})


def running(**changes: Any) -> Experiment:
    return start(experiment(**changes), NOW)


def person(n: int) -> Profile:
    return Profile(id=f"p{n:06d}", created_at=ENTERED, segments={"vip": ENTERED})


def test_every_person_is_placed_by_the_experiments_arms_and_the_global_control_group_first() -> None:
    target, split = campaign(), running()
    deal = deal_for(target, split, split.phases[-1], global_control_share=0.1, global_control_salt="s")
    seen: Counter[str] = Counter()
    for n in range(20_000):
        profile = person(n)
        recipient = plan_recipient(target, profile, "r20261201T0900Z", NOW, deal=deal)
        again = plan_recipient(target, profile, "r20261201T0900Z", NOW, deal=deal)
        assert recipient == again  # the same answer on every run, retry and worker
        if in_global_control(profile.id, 0.1, "s"):
            assert recipient.decision == "global_control"
        elif recipient.decision == "held_out":
            assert recipient.arm == "holdout" and recipient.request is None
        else:
            assert recipient.decision == "send" and recipient.request is not None
            # control sends the variant its content names; b the variant with its own id
            assert (recipient.arm, recipient.variant and recipient.variant.id) in {("control", "a"), ("b", "b")}
            assert recipient.request.vars["discount"] == (20 if recipient.arm == "b" else 10)
        seen[recipient.arm or recipient.decision] += 1
    assert abs(seen["global_control"] / 20_000 - 0.1) < 0.01
    dealt = 20_000 - seen["global_control"]
    assert abs(seen["control"] / dealt - 0.45) < 0.02
    assert abs(seen["b"] / dealt - 0.45) < 0.02
    assert abs(seen["holdout"] / dealt - 0.10) < 0.01


def test_an_experiment_on_transactional_messages_leaves_nobody_out_for_the_global_control_group() -> None:
    split = running(global_control=False)
    deal = deal_for(campaign(), split, split.phases[-1], global_control_share=0.5, global_control_salt="")
    assert deal.global_control_share == 0.0
    assert all(deal.place(f"p{n}").kind != "global_control" for n in range(2_000))


def test_an_auto_winner_tests_a_share_and_its_winner_run_sends_the_winner_to_the_rest_only() -> None:
    split = running(auto_winner={"test_percent": 20, "window_hours": 24})
    phase = split.phases[-1]
    test = deal_for(campaign(), split, phase, global_control_share=0.05, global_control_salt="")
    winner = deal_for(
        campaign(), split, phase, global_control_share=0.05, global_control_salt="", stage="winner", winner="b"
    )
    kinds: Counter[str] = Counter()
    for n in range(20_000):
        first, second = test.place(f"p{n}"), winner.place(f"p{n}")
        if first.kind == "global_control":
            assert second.kind == "global_control"
        elif first.kind == "awaiting_winner":
            assert (second.kind, second.arm, second.variant) == ("winner", "b", "b")
        else:
            assert first.kind in ("arm", "holdout") and second.kind == "in_test"
        kinds[first.kind] += 1
    tested = kinds["arm"] + kinds["holdout"]
    assert abs(tested / (20_000 - kinds["global_control"]) - 0.20) < 0.01


def test_a_winner_run_without_a_winner_sends_nobody() -> None:
    split = running(auto_winner={"test_percent": 20})
    deal = deal_for(campaign(), split, split.phases[-1], global_control_share=0, global_control_salt="", stage="winner")
    assert {deal.place(f"p{n}").kind for n in range(500)} == {"in_test"}


def test_the_winner_is_judged_a_window_and_the_archives_buffering_after_the_test() -> None:
    assert winner_time(NOW, running(auto_winner={"window_hours": 48})) == NOW + timedelta(hours=48) + WINNER_MARGIN
    assert winner_time(NOW, running()) is None


@pytest.mark.parametrize(
    ("campaign_changes", "experiment_changes", "where", "says"),
    [
        ({}, {"target": {"kind": "campaign", "id": "other"}}, "/experiment", "not this campaign"),
        ({}, {"target": {"kind": "journey", "id": "spring-sale"}}, "/experiment", "targets journey"),
        ({"holdout_percent": 10}, {}, "/holdout_percent", "set 0"),
        (
            {},
            {"arms": [{"id": "control", "weight": 1, "content": {"variant": "zz"}}, {"id": "b", "weight": 1}]},
            "/experiment",
            "variant 'zz'",
        ),
        ({}, {"arms": [{"id": "x", "weight": 1}, {"id": "b", "weight": 1}]}, "/experiment", "names no variant"),
        (
            {"schedule": {"type": "recurring", "expression": "cron(0 9 * * ? *)"}},
            {"auto_winner": {}},
            "/schedule",
            "once schedule",
        ),
    ],
)
def test_an_experiment_that_cannot_split_the_campaign_is_refused_with_where_and_why(
    campaign_changes: dict[str, Any], experiment_changes: dict[str, Any], where: str, says: str
) -> None:
    issues = experiment_issues("spring-sale", campaign(**campaign_changes), experiment(**experiment_changes))
    assert [issue.location for issue in issues] == [where]
    assert says in issues[0].message


def test_a_missing_or_stopped_experiment_is_refused_and_a_campaign_without_one_is_not_judged() -> None:
    assert experiment_issues("spring-sale", campaign(), None)[0].message == "no experiment 'spring-subjects'"
    stopped = experiment().model_copy(update={"status": "stopped"})
    assert "is stopped" in experiment_issues("spring-sale", campaign(), stopped)[0].message
    assert experiment_issues("spring-sale", campaign(experiment=None), None) == []


def test_a_campaign_without_variants_sends_its_message_in_every_arm_but_the_holdout() -> None:
    plain = campaign(variants=None)
    split = running(arms=[{"id": "send", "weight": 1}, {"id": "holdout", "weight": 1, "holdout": True}])
    assert experiment_issues("spring-sale", plain, split) == []
    deal = deal_for(plain, split, split.phases[-1], global_control_share=0, global_control_salt="")
    decisions = Counter(plan_recipient(plain, person(n), "r1", NOW, deal=deal).decision for n in range(1_000))
    assert set(decisions) == {"send", "held_out"}
    sent = plan_recipient(
        plain, person(next(n for n in range(99) if deal.place(f"p{n:06d}").kind == "arm")), "r1", NOW, deal=deal
    )
    assert sent.request is not None and sent.request.origin.step == "main" and sent.arm == "send"
