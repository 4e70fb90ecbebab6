"""Definitions that name an offer are checked on save through the admin API: a rule's or a
journey's `issue_offer`, a campaign's `message.offer` and a template's `offer('<id>')` naming an
offer that does not exist (or was deleted) are refused where they name it; an existing one is
accepted."""

from __future__ import annotations

from typing import Any

from tests.integration.test_admin_automation import api, campaign, journey, segment
from tests.integration.test_admin_messaging import Api, approved_template, email_template

__all__ = ["api"]  # the fixture, shared with the automation tests

GIVES = {"type": "issue_offer", "offer": "vip-20", "var": "coupon", "next": "hello"}


def an_offer(api: Api, offer_id: str = "vip-20") -> None:
    created = api.post("/v1/offers", {"id": offer_id, "name": "VIP", "kind": "percentage", "value": 20})
    assert created.status == 201, created.body


def rule(offer: str) -> dict[str, Any]:
    return {
        "id": "thank-buyers",
        "name": "Thank buyers",
        "trigger": {"type": "event", "event": "Order Completed"},
        "actions": [
            {"type": "send", "channels": ["email"], "template": "welcome-email"},
            {"type": "issue_offer", "offer": offer},
        ],
    }


def giving_journey(offer: str) -> dict[str, Any]:
    body = journey()
    body["start"] = "give"
    body["steps"] = {"give": {**GIVES, "offer": offer}, **body["steps"]}
    return body


def test_a_rule_naming_an_unknown_offer_is_refused_at_its_action(api: Api) -> None:
    api.post("/v1/templates", email_template())

    unknown = api.post("/v1/rules", rule("nope"), role="marketer")

    assert (unknown.status, unknown["code"]) == (400, "invalid_rule"), unknown.body
    assert unknown["issues"] == [
        {"location": "/actions/1/offer", "message": "no offer 'nope' (POST /v1/offers creates one)"}
    ]
    an_offer(api, "nope")
    assert api.post("/v1/rules", rule("nope"), role="marketer").status == 201


def test_a_journey_naming_an_unknown_offer_is_refused_at_its_step(api: Api) -> None:
    approved_template(api)

    unknown = api.post("/v1/journeys", giving_journey("nope"), role="marketer")

    assert (unknown.status, unknown["code"]) == (400, "invalid_journey"), unknown.body
    assert {"location": "/steps/give/offer", "message": "no offer 'nope' (POST /v1/offers creates one)"} in unknown[
        "issues"
    ]
    an_offer(api)
    assert api.post("/v1/journeys", giving_journey("vip-20"), role="marketer").status == 201, "known offer"


def test_a_campaign_naming_an_unknown_offer_is_refused_at_message_offer(api: Api) -> None:
    approved_template(api)
    assert api.post("/v1/segments", segment()).status == 201
    message = {"channels": ["email"], "template": "welcome-email", "offer": {"id": "nope"}}

    unknown = api.post("/v1/campaigns", campaign(message=message), role="marketer")

    assert (unknown.status, unknown["code"]) == (400, "invalid_campaign"), unknown.body
    assert unknown["issues"] == [
        {"location": "/message/offer/id", "message": "no offer 'nope' (POST /v1/offers creates one)"}
    ]
    an_offer(api, "nope")
    assert api.post("/v1/campaigns", campaign(message=message), role="marketer").status == 201


def test_a_template_naming_an_unknown_or_deleted_offer_is_refused_where_it_names_it(api: Api) -> None:
    html = "<p>Your code: {{ offer('vip-20') }}</p>"
    body = email_template(locales={"en": {"subject": "A gift", "html": html}})

    unknown = api.post("/v1/templates", body, role="marketer")

    assert (unknown.status, unknown["code"]) == (400, "invalid_template"), unknown.body
    assert unknown["issues"][0]["location"] == "/locales/en/html"
    an_offer(api)
    assert api.post("/v1/templates", body, role="marketer").status == 201
    # And once the offer is deleted, a new version naming it is refused
    assert api.delete("/v1/offers/vip-20", role="marketer").status == 204
    again = api.put("/v1/templates/welcome-email", {k: v for k, v in body.items() if k != "id"}, role="marketer")
    assert (again.status, again["code"]) == (400, "invalid_template"), again.body
