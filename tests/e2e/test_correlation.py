"""Tracing end to end: one correlation id, given by the caller of the tracking API, follows a
tracked event through the ingest queue, the profile updater, the bus, the rules, the delivery
queue and the deliver function to the email SES accepted, and is on every log line on the way."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Platform
from tests.e2e.test_rules_delivery import DAYTIME, Scenario, wait_for, zone_at_local_hour

# The functions one tracked event passes through on its way to an email, in order.
PATH = ("collect", "profile_updater", "evaluate_rules", "deliver")


def log_lines(platform: Platform, function: str) -> list[dict[str, Any]]:
    """The function's structured log lines so far (other output, such as the runtime's, skipped)."""
    lines = []
    for raw in platform.cloud.log_path(function).read_text(errors="replace").splitlines():
        start = raw.find("{")
        if start < 0:
            continue
        try:
            line = json.loads(raw[start:])
        except ValueError:
            continue
        if isinstance(line, dict) and "message" in line:
            lines.append(line)
    return lines


def traced(platform: Platform, correlation_id: str) -> Callable[[], dict[str, list[dict[str, Any]]]]:
    def probe() -> dict[str, list[dict[str, Any]]]:
        found = {
            fn: [ln for ln in log_lines(platform, fn) if ln.get("correlation_id") == correlation_id] for fn in PATH
        }
        return found if all(found.values()) else {}

    return probe


def test_one_tracked_event_is_followed_to_its_email_by_the_callers_correlation_id(platform: Platform) -> None:
    # Given a rule that emails whoever completes an order in this test's shop (the local cloud is
    # shared by the whole tier: other tests' orders must not set it off), and a person who consented
    scenario = Scenario(platform)
    t = scenario.tag
    scenario.template(f"receipt-{t}", "email", {"subject": "Thanks, {{ person.first_name }}", "text": "Order received"})
    scenario.rule(
        f"receipt-{t}",
        "Order Completed",
        [{"type": "send", "channels": ["email"], "template": f"receipt-{t}"}],
        conditions={"path": "event.properties.shop", "op": "eq", "value": t},
    )
    scenario.identify(zone_at_local_hour(DAYTIME))
    correlation_id = f"checkout-{uuid.uuid4().hex[:12]}"

    # When the order is tracked with the caller's correlation id
    event = {"userId": scenario.user, "event": "Order Completed", "properties": {"total": 42, "shop": t}}
    answer = platform.track("/v1/track", event, headers={"x-correlation-id": correlation_id})
    assert answer.status == 200, answer.body
    platform.settle()

    # Then SES received the email, tagged with that id
    [email] = wait_for(scenario.emails, "the receipt email")
    assert email.tags.get("correlation") == correlation_id, email.tags
    # and every function on the way logged under it, down to the provider call that sent this email
    trail = wait_for(traced(platform, correlation_id), "log lines under the correlation id")
    [sent] = [line for line in trail["deliver"] if line["message"] == "provider accepted"]
    assert (sent["channel"], sent["provider_id"]) == ("email", email.message_id)
    message_id = sent["message_id"]
    outcomes = [line for line in trail["deliver"] if line["message"] == "delivery outcome"]
    assert [(line["message_id"], line["status"]) for line in outcomes] == [(message_id, "sent")]
    assert [record["status"] for record in scenario.messages()] == ["sent"]
    # and no line about this message was logged under another id
    about_it = [line for line in log_lines(platform, "deliver") if line.get("message_id") == message_id]
    assert {line.get("correlation_id") for line in about_it} == {correlation_id}
    assert any(line["message"] == "events handed off" for line in trail["collect"])
    assert any(line["message"] == "events applied" for line in trail["profile_updater"])
    assert any(line["message"] == "rules fired" for line in trail["evaluate_rules"])
    for function in PATH:  # shown when run with -s: the excerpt docs/operations.md quotes
        for line in trail[function]:
            print(json.dumps(line, separators=(",", ":")))


def test_a_tracking_request_without_a_correlation_id_is_traced_by_the_gateways_request_id(platform: Platform) -> None:
    # Given a person with no rules for what they do
    scenario = Scenario(platform)

    # When an event is tracked without a correlation header
    assert platform.track("/v1/track", {"userId": scenario.user, "event": "Browsed"}).status == 200
    platform.settle()

    # Then the profile updater applied it under an id of its own (the gateway's request id), the
    # one collect logged its hand-off with
    profile_id = platform.profile(f"user_id:{scenario.user}")["id"]
    [applied] = [
        line
        for line in log_lines(platform, "profile_updater")
        if line["message"] == "events applied" and line.get("profile_id") == profile_id
    ]
    handed = {
        line.get("correlation_id") for line in log_lines(platform, "collect") if line["message"] == "events handed off"
    }
    assert applied.get("correlation_id") in handed - {None}
