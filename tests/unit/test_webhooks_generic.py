"""Generic webhooks: a JMESPath mapping, checked when the source is saved, turns a CRM's contact
and deal webhooks and a customer-service ticket into identify / track calls (pure logic)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from midstage.errors import Unauthorized, describe
from midstage.logic.webhooks import Failed, generic
from midstage.models.admin import Source, SourceCreate
from midstage.models.webhooks import WebhookMapping
from tests.support.webhooks import (
    CONTACT_MAPPING,
    DEAL_MAPPING,
    GENERIC_SECRET,
    TICKET_MAPPING,
    body_of,
    fixture,
    hmac_base64,
    hmac_hex,
)


def made(mapping: dict[str, Any], name: str) -> list[dict[str, Any] | Failed]:
    mapped = generic.calls(WebhookMapping.model_validate(mapping), fixture("generic", name))
    return mapped.calls


def test_a_crm_contact_webhook_makes_an_identify_per_contact_event_and_a_stage_change() -> None:
    # Given a CRM's array of two contact events and one company event
    calls = made(CONTACT_MAPPING, "crm_contact")
    # Then each contact event is an identify (the company is skipped) and the stage change a track
    assert [(c["type"], c["messageId"]) for c in calls if isinstance(c, dict)] == [
        ("identify", "0:1001"),
        ("identify", "0:1002"),
        ("track", "1:1002"),
    ]
    first, _, stage = calls
    assert isinstance(first, dict) and isinstance(stage, dict)
    assert first["anonymousId"] == "crm:5101"
    assert first["traits"] == {
        "email": "maria@example.com",
        "firstName": "Maria",
        "lastName": "Garcia",
        "phone": "+34 600 123 456",
    }
    assert first["timestamp"] == "2026-11-22T09:59:50+00:00"  # from epoch milliseconds
    assert (stage["event"], stage["properties"]) == ("Lifecycle Stage Changed", {"stage": "customer"})


def test_a_won_deal_is_a_deal_won_of_its_contact() -> None:
    (call,) = made(DEAL_MAPPING, "crm_deal")
    assert isinstance(call, dict)
    assert call["event"] == "Deal Won"
    assert call["anonymousId"] == "crm:5101"
    assert call["properties"] == {
        "deal_id": "4711",
        "title": "Garcia & Co: 40 seats",
        "value": 12000,
        "currency": "EUR",
    }
    assert call["messageId"] == "0:a8e1c7d2-3b4f-4e5a-9c6d-7e8f9a0b1c2d"
    # And a deal that was already won makes nothing
    body = fixture("generic", "crm_deal") | {"previous": {"status": "won"}}
    mapped = generic.calls(WebhookMapping.model_validate(DEAL_MAPPING), body)
    assert mapped.calls == [] and mapped.ignored


def test_a_ticket_names_its_requester_and_becomes_ticket_created() -> None:
    identify, track = made(TICKET_MAPPING, "ticket")
    assert isinstance(identify, dict) and isinstance(track, dict)
    assert identify["traits"] == {"email": "jon@example.com", "name": "Jon Doe"}
    assert identify["anonymousId"] == track["anonymousId"] == "support:8447388090494"
    assert track["event"] == "Ticket Created"
    assert track["properties"]["tags"] == ["shipping", "damage"]
    assert identify["messageId"] != track["messageId"]  # one delivery, two calls, each deduped alone


def test_a_call_without_its_dedupe_id_is_kept_as_a_failure_not_made() -> None:
    mapping = copy.deepcopy(DEAL_MAPPING)
    mapping["calls"][0]["messageId"] = "meta.no_such_field"
    (failed,) = made(mapping, "crm_deal")
    assert isinstance(failed, Failed) and failed.code == "missing_message_id"


def test_a_bad_expression_is_refused_when_saved_with_where_it_is() -> None:
    # Given a mapping whose traits.email expression does not compile
    mapping = copy.deepcopy(CONTACT_MAPPING)
    mapping["calls"][1]["properties"] = {"stage": "propertyValue[", "ok": "a"}
    # When a generic source is made with it, then it is refused naming the call, the field and why
    with pytest.raises(ValidationError) as refused:
        SourceCreate.model_validate({"name": "crm", "kind": "generic", "mapping": mapping})
    message = describe(refused.value, "body")
    assert message.startswith("mapping.calls.1.properties")
    assert "field 'stage'" in message and "JMESPath" in message


@pytest.mark.parametrize(
    ("change", "needs"),
    [
        ({"type": "track", "event": None}, "event"),
        ({"type": "identify"}, "traits"),
        ({"anonymousId": None}, "userId"),
        ({"messageId": "a.["}, "messageId"),
    ],
)
def test_an_incomplete_call_is_refused_when_saved(change: dict[str, Any], needs: str) -> None:
    call = {**TICKET_MAPPING["calls"][1], **change}
    with pytest.raises(ValidationError) as refused:
        WebhookMapping.model_validate({"auth": {"type": "bearer"}, "calls": [call]})
    assert needs in describe(refused.value, "mapping")


def test_kinds_take_what_they_need_and_nothing_else() -> None:
    base = {"id": "src_1", "name": "x", "write_key": "wk", "created_at": "2026-11-22T10:00:00+00:00"}
    with pytest.raises(ValidationError):
        Source.model_validate({**base, "kind": "generic", "signing_secret": GENERIC_SECRET})  # no mapping
    with pytest.raises(ValidationError):
        Source.model_validate({**base, "mapping": DEAL_MAPPING})  # a segment source has none
    with pytest.raises(ValidationError):
        SourceCreate.model_validate({"name": "x", "signing_secret": GENERIC_SECRET})  # nor a secret
    # And a source stored before kinds existed reads as a segment source
    assert Source.model_validate(base).kind == "segment"


def test_hmac_in_hex_with_a_prefix_or_base64_and_a_bearer_token_authenticate() -> None:
    raw = body_of(fixture("generic", "crm_contact"))
    contact = WebhookMapping.model_validate(CONTACT_MAPPING).auth
    generic.verify(contact, GENERIC_SECRET, raw, {"x-signature": hmac_hex(raw, GENERIC_SECRET, "sha256=")})
    deal = WebhookMapping.model_validate(DEAL_MAPPING).auth
    generic.verify(deal, GENERIC_SECRET, raw, {"x-crm-signature": hmac_base64(raw, GENERIC_SECRET)})
    bearer = WebhookMapping.model_validate(TICKET_MAPPING).auth
    generic.verify(bearer, GENERIC_SECRET, raw, {"authorization": f"Bearer {GENERIC_SECRET}"})
    refusals = [
        (contact, {"x-signature": hmac_hex(raw, GENERIC_SECRET)}),  # without its prefix
        (contact, {"x-signature": hmac_hex(raw + b" ", GENERIC_SECRET, "sha256=")}),
        (deal, {"x-crm-signature": hmac_base64(raw, "another-secret")}),
        (bearer, {"authorization": "Bearer guess"}),
        (bearer, {"authorization": f"Basic {GENERIC_SECRET}"}),
    ]
    for auth, headers in refusals:
        with pytest.raises(Unauthorized) as refused:
            generic.verify(auth, GENERIC_SECRET, raw, headers)
        assert refused.value.code == "invalid_signature", headers
    with pytest.raises(Unauthorized) as missing:
        generic.verify(contact, GENERIC_SECRET, raw, {})
    assert missing.value.code == "missing_signature"
