"""The local cloud reads schedules with the product's parser (midstage.logic.schedules): a template
schedule AWS would refuse is a start-up problem, named by its logical id, and one the product's
admin API would accept starts."""

from __future__ import annotations

import pytest

from infra.localcloud.clock import rule_schedule_problem, schedule_problems
from infra.localcloud.model import CloudModel, EventRuleSpec, ScheduleSpec
from midstage.logic.schedules import validate_expression


def model_with(expression: str, timezone: str = "UTC", *, rule: str | None = None) -> CloudModel:
    model = CloudModel(stack_name="s", region="us-east-1", account_id="123456789012", parameters={})
    model.schedules.append(
        ScheduleSpec(
            logical_id="Nightly",
            name="nightly",
            expression=expression,
            timezone=timezone,
            target_arn="arn:aws:lambda:us-east-1:123456789012:function:echo",
            input=None,
            enabled=True,
        )
    )
    if rule is not None:
        model.rules.append(
            EventRuleSpec(
                logical_id="Hourly",
                name="hourly",
                bus_name="default",
                event_pattern=None,
                schedule_expression=rule,
                enabled=True,
                targets=(),
            )
        )
    return model


@pytest.mark.parametrize(
    ("expression", "timezone", "why"),
    [
        # Each of these the local cloud's former parser of its own accepted, or crashed on.
        ("cron(0/60 * * * ? *)", "UTC", "increment that is not a whole number from 1 to 59"),
        ("rate(1 day)", "Europe", "not an IANA time zone"),  # a directory of zones: IsADirectoryError before
        ("rate(1 day)", "localtime", "not an IANA time zone"),  # the host's zone file
        ("cron(0 10 ? * MON/2 *)", "UTC", "uses '/', which this field does not take"),
        ("cron(0 10 31 2 ? *)", "UTC", "never fires"),
    ],
)
def test_given_a_template_schedule_aws_refuses_when_the_cloud_checks_it_then_it_is_a_start_up_problem(
    expression: str, timezone: str, why: str
) -> None:
    # Given a schedule in the template that the product's own check refuses
    assert validate_expression(expression, timezone)

    # When the local cloud checks the template's schedules
    (problem,) = schedule_problems(model_with(expression, timezone))

    # Then it refuses it too, naming the schedule and saying why
    assert problem.startswith("Nightly: invalid schedule at /")
    assert why in problem


@pytest.mark.parametrize(
    ("expression", "timezone"),
    [
        ("cron(0/15 * * * ? *)", "Europe/Paris"),
        ("cron(0 9 ? * MON-FRI *)", "America/New_York"),
        ("rate(1 minute)", "UTC"),
        ("at(2030-01-01T01:00:00)", "Asia/Tokyo"),
    ],
)
def test_given_a_template_schedule_the_product_accepts_when_the_cloud_checks_it_then_there_is_no_problem(
    expression: str, timezone: str
) -> None:
    assert validate_expression(expression, timezone) == []
    assert schedule_problems(model_with(expression, timezone)) == []


def test_given_rule_schedules_when_checked_then_they_are_read_in_utc_and_take_no_at() -> None:
    assert rule_schedule_problem("rate(1 hour)") is None
    assert rule_schedule_problem("cron(0 10 * * ? *)") is None
    assert "at() is Scheduler's" in (rule_schedule_problem("at(2030-01-01T00:00:00)") or "")
    assert "takes the plural unit" in (rule_schedule_problem("rate(2 hour)") or "")
    problems = schedule_problems(model_with("rate(1 day)", rule="cron(0 25 * * ? *)"))
    assert problems == ["Hourly: invalid schedule at /expression: cron hours field: '25' is out of range 0-23"]
