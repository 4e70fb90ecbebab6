"""An experiment on single messages (logic.experiments.messages): the arm a person is dealt,
what it changes in the message, and content that cannot change a message refused with why; and
a rule's send action and a journey's send step carry the experiment they name to the deliverer."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from midstage.logic.experiments.assignment import Split, assign
from midstage.logic.experiments.lifecycle import start
from midstage.logic.experiments.messages import content_problem, message_arm, with_arm
from midstage.models.experiments import Experiment
from midstage.models.messaging import MessageRequest, Origin, SendAction

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def experiment(**changes: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "welcome-subjects",
            "name": "Welcome subject lines",
            "target": {"kind": "rule", "id": "welcome"},
            "arms": [
                {"id": "plain", "weight": 1},
                {"id": "bold", "weight": 1, "content": {"template": {"email": "note-bold"}, "vars": {"tone": "bold"}}},
                {"id": "holdout", "weight": 1, "holdout": True},
            ],
            "goal": "purchase",
            "metrics": [{"id": "purchase", "kind": "conversion", "event": "Order Completed"}],
            "created_at": NOW,
            "updated_at": NOW,
            **changes,
        }
    )


def request() -> MessageRequest:
    return MessageRequest(
        key="rule:welcome:0:x:p1",
        origin=Origin(kind="rule", id="welcome"),
        profile_id="p1",
        channels=["email"],
        template="note",
        vars={"tone": "plain", "name": "Ada"},
        requested_at="2026-12-07T12:00:00.000Z",
        experiment="welcome-subjects",
    )


def test_the_arm_is_the_experiments_hash_of_the_person_and_changes_template_and_vars() -> None:
    running = start(experiment(), NOW)
    split = Split.of([("plain", 1), ("bold", 1), ("holdout", 1)])
    dealt = Counter()
    for n in range(3_000):
        arm = message_arm(running, f"p{n}")
        assert arm is not None and arm.arm == assign(split, "welcome-subjects", 1, f"p{n}") and arm.phase == 1
        assert arm.holdout is (arm.arm == "holdout")
        dealt[arm.arm] += 1
    assert all(900 < count < 1100 for count in dealt.values())
    bold = next(message_arm(running, f"p{n}") for n in range(50) if message_arm(running, f"p{n}").arm == "bold")  # type: ignore[union-attr]
    assert bold is not None
    changed = with_arm(request(), bold)
    assert changed.template == {"email": "note-bold"} and changed.vars == {"tone": "bold", "name": "Ada"}
    plain = next(message_arm(running, f"p{n}") for n in range(50) if message_arm(running, f"p{n}").arm == "plain")  # type: ignore[union-attr]
    assert plain is not None and with_arm(request(), plain) == request()


def test_an_experiment_that_is_not_running_deals_nobody() -> None:
    assert message_arm(experiment(), "p1") is None
    stopped = start(experiment(), NOW).model_copy(update={"status": "stopped"})
    assert message_arm(stopped, "p1") is None


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ({"subject": "Hi"}, "not subject"),
        ({"template": "Not An Id"}, "template id"),
        ({"template": {"fax": "note"}}, "per channel"),
        ({"template": 3}, "template id"),
        ({"vars": ["a"]}, "vars are an object"),
    ],
)
def test_content_that_cannot_change_a_message_is_refused_with_why(content: dict[str, Any], says: str) -> None:
    problem = content_problem(content)
    assert problem is not None and says in problem


def test_content_that_changes_a_message_is_accepted() -> None:
    for content in (None, {}, {"template": "note-b"}, {"template": {"email": "a", "sms": "b"}, "vars": {"x": 1}}):
        assert content_problem(content) is None


def test_a_send_action_carries_the_experiment_it_names() -> None:
    action = SendAction.model_validate(
        {"type": "send", "channels": ["email"], "template": "note", "experiment": "welcome-subjects"}
    )
    assert action.experiment == "welcome-subjects"
    with pytest.raises(ValueError, match="experiment"):
        SendAction.model_validate({"type": "send", "channels": ["email"], "template": "note", "experiment": "Bad Id"})
