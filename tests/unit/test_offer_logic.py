"""Offers' pure decisions: generated codes and their check character, who may be given a code and
why not, a code's state over time, reading an upload, and how a redemption is classed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from midstage.errors import InvalidInput
from midstage.logic import offers
from midstage.logic.offers import ALPHABET, Holding
from midstage.models.offers import Offer, OfferCreate

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def offer(**changes: Any) -> Offer:
    document: dict[str, Any] = {"id": "vip-20", "name": "VIP", "kind": "percentage", "value": 20}
    document.update(changes)
    return Offer.model_validate(document)


# ------------------------------------------------------------------------------ generated codes
def test_every_sequence_number_gives_a_different_code_with_a_valid_check_character() -> None:
    # Given a pattern with six places (32^6 codes) and the first 20,000 sequence numbers
    codes = [offers.generated_code("VIP-XXXXXX", n, offers.salt_of("vip-20")) for n in range(20_000)]

    # Then each code is different, keeps the pattern's fixed part, and checks
    assert len(set(codes)) == 20_000
    assert all(c.startswith("VIP-") and len(c) == 11 and offers.has_valid_check(c) for c in codes)


def test_the_whole_space_of_a_small_pattern_maps_one_to_one() -> None:
    # A bijection on the full space is what makes codes unique by construction, however many are issued.
    pattern = "XXXXXX"
    space = 32**6
    seen = {offers.generated_code(pattern, n, 7)[:-1] for n in range(0, space, 997)}
    assert len(seen) == len(range(0, space, 997))
    with pytest.raises(ValueError, match="outside"):
        offers.generated_code(pattern, space, 7)


def test_the_check_character_catches_a_mistyped_character_and_a_swap() -> None:
    code = offers.generated_code("XXXXXXXX", 12345, offers.salt_of("welcome"))
    body = code[:-1]
    for place in range(len(body)):
        for other in ALPHABET:
            if other != body[place]:
                typo = body[:place] + other + body[place + 1 :] + code[-1]
                assert not offers.has_valid_check(typo), typo
    for place in range(len(body) - 1):
        if body[place] != body[place + 1]:
            swapped = body[:place] + body[place + 1] + body[place] + body[place + 2 :] + code[-1]
            assert not offers.has_valid_check(swapped), swapped


def test_two_offers_with_one_pattern_hand_out_different_codes() -> None:
    first = {offers.generated_code("XXXXXX", n, offers.salt_of("a")) for n in range(100)}
    second = {offers.generated_code("XXXXXX", n, offers.salt_of("b")) for n in range(100)}
    assert first != second


# ------------------------------------------------------------------------------ who may be given one
@pytest.mark.parametrize(
    ("changes", "segments", "held", "reason"),
    [
        ({}, [], Holding(), None),
        ({"valid_from": "2026-12-01T00:00:00Z"}, [], Holding(), "outside_validity"),
        ({"valid_until": "2026-11-22T10:00:00Z"}, [], Holding(), "outside_validity"),
        ({"valid_until": "2026-11-22T10:00:01Z"}, [], Holding(), None),
        ({"segments": ["vip"]}, ["newcomers"], Holding(), "segment_not_allowed"),
        ({"segments": ["vip"]}, ["vip"], Holding(), None),
        ({}, [], Holding(count=1), "per_person_limit"),
        ({"enabled": False}, [], Holding(), "offer_disabled"),
        ({"budget": {"per_person": 2}}, [], Holding(count=1), None),
    ],
)
def test_a_refusal_before_the_claim_names_its_reason(
    changes: dict[str, Any], segments: list[str], held: Holding, reason: str | None
) -> None:
    assert offers.refusal_before_claim(offer(**changes), NOW, segments, held) == reason


def test_the_issue_limit_is_the_pool_or_the_budget_whichever_is_smaller() -> None:
    assert offers.issue_limit(offer(), 40) == 40
    assert offers.issue_limit(offer(budget={"total": 30}), 40) == 30
    assert offers.issue_limit(offer(budget={"total": 50}), 40) == 40
    assert offers.issue_limit(offer(source="generated", budget={"total": 5}), 0) == 5
    assert offers.exhausted_reason(offer(budget={"total": 30}), 30) == "budget_exhausted"
    assert offers.exhausted_reason(offer(budget={"total": 50}), 40) == "pool_exhausted"
    assert offers.exhausted_reason(offer(), 40) == "pool_exhausted"


def test_a_code_is_expired_from_the_offers_end_unless_it_was_redeemed() -> None:
    ending = offer(valid_until="2026-11-30T00:00:00Z")
    later = datetime(2026, 12, 1, tzinfo=UTC)
    assert offers.code_state("issued", ending, NOW) == "issued"
    assert offers.code_state("available", ending, NOW) == "available"
    assert offers.code_state("issued", ending, later) == "expired"
    assert offers.code_state("available", ending, later) == "expired"
    assert offers.code_state("redeemed", ending, later) == "redeemed"


# ------------------------------------------------------------------------------ definitions
@pytest.mark.parametrize(
    "document",
    [
        {"kind": "percentage", "value": 0},
        {"kind": "percentage", "value": 101},
        {"kind": "amount_off", "value": 10},
        {"kind": "gift", "valid_from": "2026-12-01T00:00:00Z", "valid_until": "2026-11-01T00:00:00Z"},
        {"kind": "gift", "valid_until": "2026-12-01T00:00:00"},
        {"kind": "gift", "source": "generated", "generated": {"pattern": "XXXXX"}},
        {"kind": "gift", "generated": {"pattern": "XXXXXXXX"}},
    ],
)
def test_an_inconsistent_offer_is_refused(document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        OfferCreate.model_validate({"id": "x", "name": "X", **document})


def test_a_generated_offer_without_a_pattern_gets_the_default_one() -> None:
    created = OfferCreate.model_validate({"id": "x", "name": "X", "kind": "gift", "source": "generated"})
    assert created.generated is not None and created.generated.pattern == "XXXXXXXX"


# ------------------------------------------------------------------------------ uploads
def test_a_csv_upload_reads_the_first_column_and_skips_the_header_and_blank_lines() -> None:
    text = "code,batch\nVIP-1,a\n\n  VIP-2 ,b\nVIP-1,c\n"
    assert offers.read_codes(text, "text/csv") == ["VIP-1", "VIP-2", "VIP-1"]
    assert offers.check_codes(offers.read_codes(text, "text/csv"), 10) == ["VIP-1", "VIP-2"]


def test_a_csv_upload_with_carriage_returns_reads_and_an_unreadable_line_is_refused_by_number() -> None:
    assert offers.read_codes("code\r\nVIP-1\rVIP-2\r\n", "text/csv") == ["VIP-1", "VIP-2"]
    with pytest.raises(InvalidInput) as refused:
        offers.read_codes('code\nVIP-1\n"VIP-2"x\n', "text/csv")
    assert refused.value.code == "invalid_codes" and str(refused.value).startswith("line 3:")


def test_a_json_upload_and_its_refusals() -> None:
    assert offers.read_codes({"codes": ["A-1", "B-2"]}, "application/json") == ["A-1", "B-2"]
    with pytest.raises(InvalidInput) as shape:
        offers.read_codes(["A-1"], "application/json")
    with pytest.raises(InvalidInput) as bad:
        offers.check_codes(["A-1", "has space"], 10)
    with pytest.raises(InvalidInput) as many:
        offers.check_codes(["A-1", "B-2", "C-3"], 2)
    with pytest.raises(InvalidInput) as empty:
        offers.check_codes([], 2)
    assert (shape.value.code, bad.value.code, many.value.code, empty.value.code) == (
        "invalid_codes",
        "invalid_codes",
        "too_many_codes",
        "invalid_codes",
    )


# ------------------------------------------------------------------------------ redemption
def test_only_redemption_events_with_a_coupon_name_one() -> None:
    order = {"type": "track", "event": "Order Completed", "properties": {"coupon": " VIP-1 ", "revenue": 50}}
    assert offers.coupon_of(order) == "VIP-1"
    assert offers.coupon_of({**order, "event": "Coupon Applied"}) == "VIP-1"
    assert offers.coupon_of({**order, "event": "Product Viewed"}) is None
    assert offers.coupon_of({**order, "properties": {"coupon": ""}}) is None
    assert offers.coupon_of({**order, "type": "identify"}) is None


@pytest.mark.parametrize(
    ("properties", "amounts"),
    [
        ({"revenue": 50, "discount": 10}, (Decimal(50), Decimal(10))),
        ({"total": "42.5"}, (Decimal("42.5"), Decimal(0))),
        ({"revenue": -3, "discount": True}, (Decimal(0), Decimal(0))),
        ({"revenue": "lots"}, (Decimal(0), Decimal(0))),
        ({"revenue": float("nan")}, (Decimal(0), Decimal(0))),
    ],
)
def test_an_orders_amounts_are_read_and_bad_ones_are_zero(
    properties: dict[str, Any], amounts: tuple[Decimal, Decimal]
) -> None:
    assert offers.order_amounts({"event": "Order Completed", "properties": properties}) == amounts


def test_a_coupon_applied_carries_no_amounts() -> None:
    assert offers.order_amounts({"event": "Coupon Applied", "properties": {"revenue": 5}}) == (Decimal(0), Decimal(0))


def test_a_redemption_is_classed_by_who_used_the_code_and_when() -> None:
    ending = offer(valid_until="2026-11-30T00:00:00Z")
    later = datetime(2026, 12, 1, tzinfo=UTC)
    assert offers.classify_redemption("ann", "issued", "ann", ending, NOW) == "redeemed"
    assert offers.classify_redemption("ann", "issued", "bob", ending, NOW) == "redeemed_by_other"
    assert offers.classify_redemption(None, "available", "bob", ending, NOW) == "redeemed_by_other"
    assert offers.classify_redemption("ann", "issued", "ann", ending, later) == "redeemed_after_expiry"
    assert offers.classify_redemption("ann", "redeemed", "bob", ending, NOW) == "already_redeemed"
    assert offers.redemption_rate(40, 9) == 0.225 and offers.redemption_rate(0, 0) == 0.0


# ------------------------------------------------------------------------------ the rule action
def test_an_issue_offer_action_names_its_firing_as_the_cause_and_fills_only_later_sends() -> None:
    from midstage.logic.rules import Trigger, plan_actions, with_offer_codes
    from midstage.models.messaging import Rule
    from tests.support.fakes import person

    # Given a rule that sends, issues a code, then sends again
    rule = Rule.model_validate(
        {
            "id": "thanks",
            "name": "thanks",
            "trigger": {"type": "event", "event": "Order Completed"},
            "actions": [
                {"type": "send", "channels": ["email"], "template": "before"},
                {"type": "issue_offer", "offer": "vip-20", "var": "code"},
                {"type": "send", "channels": ["email"], "template": "after"},
            ],
            "refire": {"mode": "every"},
        }
    )
    trigger = Trigger("event", "Order Completed", "m1")
    # When it is planned twice for one firing
    first = plan_actions(rule, person(), None, trigger, NOW)
    again = plan_actions(rule, person(), None, trigger, NOW)

    # Then one claim, with the same cause both times; the code reaches only the send after it
    assert [c.offer for c in first.offers] == ["vip-20"] and first.offers == again.offers
    filled = with_offer_codes(first.messages, first.offers[0], "VIP-1", None)
    assert [m.vars.get("code") for m in filled] == [None, "VIP-1"]
    refused = with_offer_codes(first.messages, first.offers[0], None, "pool_exhausted")
    assert [m.vars.get("code_refused") for m in refused] == [None, "pool_exhausted"]


# ------------------------------------------------------------------------------ the low-pool mark
def test_only_the_claim_that_brings_a_pool_down_to_its_low_mark_raises_the_alarm() -> None:
    # Given a pool of 10 codes that is low at 3 left
    low = offer(pool_low_at=3)
    # Then of the ten claims (slots 0..9) only the seventh leaves 3, and says so
    assert [offers.leaves_pool_low(low, 10, slot) for slot in range(10)] == [None] * 6 + [3] + [None] * 3
    # a budget smaller than the pool is what runs low
    capped = offer(pool_low_at=1, budget={"total": 4})
    assert [offers.leaves_pool_low(capped, 10, slot) for slot in range(4)] == [None, None, 1, None]
    # the default mark (0) is the last code
    assert [offers.leaves_pool_low(offer(), 3, slot) for slot in range(3)] == [None, None, 0]
    # generated codes do not run low
    assert offers.leaves_pool_low(offer(source="generated", pool_low_at=5), 0, 0) is None


def test_causes_are_counted_by_what_issued_them() -> None:
    from midstage.logic.offers import by_cause, cause_group

    assert cause_group("campaign:black-friday:prof_ann") == "campaign:black-friday"
    assert cause_group("journey:abandoned-cart:p1:3:issue-coupon:4") == "journey:abandoned-cart"
    assert cause_group("rule:vip-winback:0:2026-11-22T10:00:00Z:p1") == "rule:vip-winback"
    assert cause_group("message:2f9c") == "template"
    assert cause_group("support-ticket-8812") == "api"
    assert cause_group("campaign:") == "api"
    counts = {"by#campaign:bf#issued": 4, "by#campaign:bf#redeemed": 1, "by#campaign:bf#revenue": 80, "redeemed": 1}
    assert by_cause(counts) == {
        "campaign:bf": {"issued": 4, "redeemed": 1, "redemptionRate": 0.25, "revenue": 80, "discountCost": 0}
    }


def test_a_merged_away_profiles_holding_becomes_the_survivors_once() -> None:
    from midstage.logic.offers import merged_holding

    # Given a survivor who holds nothing yet and a merged-away profile holding a code for a cause
    own = Holding(version=0)
    merged = {"prof_visitor": Holding(current="VIP-1", current_slot=0, count=1, causes={"c1": "VIP-1"}, version=3)}

    # When their holdings are read together
    held = merged_holding(own, merged)

    # Then the survivor holds the code and its cause, counted once, over the survivor's own version
    assert (held.current, held.current_slot, held.count, dict(held.causes or {})) == ("VIP-1", 0, 1, {"c1": "VIP-1"})
    assert held.version == 0 and held.absorbed == ("prof_visitor",)
    # And once the survivor's holding says it took them over, they are not counted again
    assert merged_holding(held, merged) is held


def test_a_survivors_own_code_wins_and_counts_add_up() -> None:
    from midstage.logic.offers import merged_holding

    own = Holding(current="OWN-1", current_slot=4, count=1, causes={"c": "OWN-1"}, version=2)
    held = merged_holding(own, {"a": Holding(current="A-1", current_slot=1, count=2, causes={"c": "A-1", "d": "A-1"})})
    assert (held.current, held.count, dict(held.causes or {})) == ("OWN-1", 3, {"c": "OWN-1", "d": "A-1"})


def test_a_code_issued_to_a_merged_away_profile_redeemed_by_the_survivor_is_redeemed() -> None:
    from midstage.logic.offers import classify_redemption

    offer = Offer(id="o", name="o", kind="gift")
    at = datetime(2026, 11, 22, tzinfo=UTC)
    assert classify_redemption("prof_visitor", "issued", {"prof_customer", "prof_visitor"}, offer, at) == "redeemed"
    assert classify_redemption("prof_visitor", "issued", "prof_customer", offer, at) == "redeemed_by_other"


@pytest.mark.parametrize(
    ("cause", "group"),
    [
        ("campaign:black-friday:prof_ann", "campaign:black-friday"),
        ("journey:abandoned-cart:p:1:step:2", "journey:abandoned-cart"),
        ("rule:vip-winback", "rule:vip-winback"),
        ("campaign:Not#An/Id:1", "api"),  # an id of another shape is a caller's own cause
        ("rule:" + "x" * 65, "api"),
        ("message:m-1", "template"),
        ("support-ticket-8812", "api"),
    ],
)
def test_a_cause_is_counted_under_a_group_of_a_known_shape(cause: str, group: str) -> None:
    assert offers.cause_group(cause) == group


def test_a_dropped_csv_of_codes_keeps_the_good_lines_and_names_the_bad_ones() -> None:
    from midstage.logic.offers import read_code_lines

    text = 'code,batch\r\nSHOP-0001,a\r\nSHOP-0002,a\r\n"bad code!",a\r\nSHOP-0001,b\r\n\r\n"unclosed,a\r\n'
    codes, problems = read_code_lines(text.encode())
    assert codes == ["SHOP-0001", "SHOP-0002"]
    assert [line for line, _ in problems] == [4, 7]
    assert "'bad code!' is not 3 to 64 letters" in problems[0][1]


def test_a_dropped_file_that_is_not_text_is_refused_whole() -> None:
    from midstage.errors import ImportRefused
    from midstage.logic.offers import read_code_lines

    with pytest.raises(ImportRefused):
        read_code_lines(b"\x89PNG\r\n\x1a\n\x00\x00")


@pytest.mark.parametrize(
    ("key", "offer_id"),
    [
        ("imports/offer-codes/vip-20/shop-export.csv", "vip-20"),
        ("imports/offer-codes/vip-20/2026/11/part-1.csv", "vip-20"),
        ("imports/offer-codes/vip-20/", None),
        ("imports/offer-codes/codes.csv", None),
        ("imports/offer-codes/Not An Id/codes.csv", None),
    ],
)
def test_the_folder_of_a_dropped_file_names_its_offer(key: str, offer_id: str | None) -> None:
    from midstage.services.offer_codes import offer_of

    assert offer_of(key) == offer_id
