"""The shipped rule library end to end: `midstage.cli apply library` puts it on the local cloud
through the admin API, and each rule then does its job; what SES and SNS received is read back.

The library's rules act on everyone (any "Signed Up", any "Order Completed", any lifecycle
change), and other modules count the emails their own rules send to their people, so the rules
are applied for this module only and disabled when it ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.localcloud.library import seed_library
from midstage.cli import Report, apply
from midstage.definitions import LIBRARY
from midstage.logic.timefmt import iso
from tests.e2e.conftest import Platform
from tests.e2e.test_rules_delivery import DAYTIME, Scenario, wait_for, zone_at_local_hour


@pytest.fixture(scope="module")
def library(platform: Platform) -> Iterator[Report]:
    report = apply(LIBRARY, platform.url, platform.admin_key, echo=None)
    yield report
    for step in report.steps:
        if step.document.kind == "rule":
            answer = platform.admin("PATCH", f"/v1/rules/{step.document.id}", {"enabled": False})
            assert answer.status == 200, answer.body


@pytest.fixture
def person(platform: Platform, library: Report) -> Scenario:
    """A fresh person (ids unique to the test); the library is on the platform."""
    scenario = Scenario(platform)
    scenario.user = f"library-{scenario.tag}"
    return scenario


def post_at(platform: Platform, event: dict[str, Any], ago: timedelta) -> None:
    """Track an event that happened `ago` (its own timestamp, as an SDK sending history would)."""
    answer = platform.track("/v1/track", {**event, "timestamp": iso(datetime.now(UTC) - ago)})
    assert answer.status == 200, answer.body


def test_the_library_is_applied_once_and_applying_it_again_changes_nothing(platform: Platform, library: Report) -> None:
    # (whatever the cloud held before, the module's first apply left every document as its file says)
    assert {s.document.kind for s in library.steps} == {"rule", "template", "segment", "offer", "journey"}
    again = seed_library(platform.cloud, platform.admin_key, echo=False)  # what `make run` calls
    assert {s.action for s in again.steps} == {"unchanged"}, [s.describe(dry_run=True) for s in again.steps]
    listed = platform.admin("GET", "/v1/templates").body["templates"]
    shipped = {s.document.id for s in library.steps if s.document.kind == "template"}
    approved = {t["id"]: t["approvedVersion"] == t["latestVersion"] for t in listed if t["id"] in shipped}
    assert approved == dict.fromkeys(shipped, True)
    rules = platform.admin("GET", "/v1/rules?enabled=true").body["rules"]
    assert {"welcome", "order-satisfaction", "vip-winback", "churn-risk-survey"} <= {r["id"] for r in rules}


def test_welcome_sends_the_welcome_email_and_sms_once(person: Scenario) -> None:
    person.identify(zone_at_local_hour(DAYTIME))

    person.track("Signed Up", plan="pro")

    [email] = wait_for(person.emails, "the welcome email")
    assert email.subject == "Welcome aboard"
    assert email.text is not None and email.text.startswith("Hi Ann,")
    assert "See what's new: https://shop.example.com/" in email.text
    assert email.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [sms] = wait_for(person.sms, "the welcome SMS")
    assert sms.message.startswith("Hi Ann, thanks for signing up!") and sms.message.endswith("Reply STOP to opt out.")
    assert sms.sms_type == "Promotional"
    records = person.messages()
    assert sorted((m["origin"], m["channel"], m["status"]) for m in records) == [
        ("rule#welcome", "email", "sent"),
        ("rule#welcome", "sms", "sent"),
    ]
    # once per person: signing up again sends nothing more
    person.track("Signed Up", plan="pro")
    assert len(person.emails()) == 1 and len(person.sms()) == 1


def test_an_order_gets_a_satisfaction_survey_with_its_total_at_most_weekly(person: Scenario) -> None:
    person.identify(zone_at_local_hour(DAYTIME))

    person.track("Order Completed", order_id="o-1", revenue=1234.5, currency="USD")

    [email] = wait_for(person.emails, "the survey email")
    assert email.subject == "How was your order?"
    assert email.text is not None and email.html is not None
    assert "Thank you for your order of $1,234.50." in email.text
    assert "$1,234.50" in email.html
    assert "Tell us in two minutes: https://survey.example.com/order?order=o-1" in email.text
    # a second order within the 7-day cooldown is not asked about
    person.track("Order Completed", order_id="o-2", revenue=20)
    assert len(person.emails()) == 1
    assert [m["origin"] for m in person.messages()] == ["rule#order-satisfaction"]


def test_churn_survey_goes_to_someone_last_seen_100_days_ago(platform: Platform, person: Scenario) -> None:
    # Given a person whose whole history is 100+ days old, imported in one batch (one profile
    # write: the stage is "churned" from the start, and that change sets the rule off)
    consent = {"channel": "*", "purpose": "marketing", "granted": True}
    old = datetime.now(UTC)
    batch = [
        {
            "type": "identify",
            "userId": person.user,
            "traits": {"email": person.email, "first_name": "Ann"},
            "context": {"timezone": zone_at_local_hour(DAYTIME)},
            "timestamp": iso(old - timedelta(days=130)),
        },
        {
            "type": "track",
            "userId": person.user,
            "event": "Consent Updated",
            "properties": consent,
            "timestamp": iso(old - timedelta(days=130)),
        },
        *(
            {
                "type": "track",
                "userId": person.user,
                "event": "Order Completed",
                "properties": {"revenue": 40, "order_id": f"c{days}"},
                "timestamp": iso(old - timedelta(days=days)),
            }
            for days in (120, 100)
        ),
    ]

    answer = platform.track("/v1/batch", {"batch": batch})
    assert answer.status == 200, answer.body
    platform.settle()

    # Then the survey goes out, and nothing else (the old orders ask for no satisfaction survey)
    [email] = wait_for(person.emails, "the churn survey")
    assert email.subject == "Can we ask you one question?"
    assert email.text is not None and "Hi Ann," in email.text
    assert "Answer the question: https://survey.example.com/we-miss-you" in email.text
    assert platform.profile(f"user_id:{person.user}")["computed"]["lifecycle_stage"] == "churned"
    assert [m["origin"] for m in person.messages()] == ["rule#churn-risk-survey"]


# Last: the sweep, told it is a month later, recomputes every profile in the cloud.
def test_vip_winback_sends_the_coupon_when_the_sweep_finds_a_big_spender_gone_quiet(
    platform: Platform, person: Scenario
) -> None:
    # Given a person seen today whose orders, worth 1,500 (value tier "high": 1,000 to 5,000),
    # were placed 45 and 40 days ago (old orders set no survey off: the rule wants recent ones)
    person.identify(zone_at_local_hour(DAYTIME))
    for revenue, days in ((900, 45), (600, 40)):
        order = {"revenue": revenue, "order_id": f"v{days}"}
        post_at(
            platform, {"userId": person.user, "event": "Order Completed", "properties": order}, timedelta(days=days)
        )
    platform.settle()
    computed = platform.profile(f"user_id:{person.user}")["computed"]
    assert (computed["value_tier"], computed["lifecycle_stage"]) == ("high", "active")
    assert person.emails() == []

    # When the hourly lifecycle sweep runs a month later (handlers read wall time; the sweep is
    # told the time through its schedule's scheduledTime), the person has gone silent
    month_later = iso(datetime.now(UTC) + timedelta(days=31))
    result = platform.cloud.invoke("LifecycleSweepFunction", {"parts": 1, "scheduledTime": month_later})
    assert result.ok, result.error
    assert result.payload["started"]  # the refresh workers sweep the profiles, then rules react
    platform.settle()

    # Then the win-back email with the VIP coupon is sent
    [email] = wait_for(person.emails, "the VIP win-back email")
    assert email.subject == "A thank-you for you: 20% off your next order"
    assert email.text is not None and "Hi Ann," in email.text
    # their own code of the library's vip-back-20 offer, issued to them for this firing
    found = re.findall(r"Your code: (VIP-[0-9A-Z]{7})\s", email.text)
    assert len(found) == 1, email.text
    profile_id = platform.profile(f"user_id:{person.user}")["id"]
    held = platform.admin("GET", "/v1/offers/vip-back-20/codes?state=issued").body["codes"]
    [theirs] = [c for c in held if c["profileId"] == profile_id]
    assert theirs["coupon"] == found[0] and theirs["cause"].startswith("rule:vip-winback:0:")
    assert [m["origin"] for m in person.messages()] == ["rule#vip-winback"]
    assert platform.profile(f"user_id:{person.user}")["computed"]["lifecycle_stage"] == "silent"
