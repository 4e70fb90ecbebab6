"""Offers on moto: a pool handed out at most once under concurrent callers, idempotent per person
and cause, refusals recorded with their reason, the admin routes end to end through the real
handler, and redemption through the rule evaluator's handler (where `event.tracked` arrives)."""

from __future__ import annotations

import copy
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.offer_store import OfferStore
from midstage.clock import fixed
from midstage.models.offers import Offer
from midstage.services.offers import OfferIssuer
from tests.integration.conftest import Context, Stack, sample
from tests.integration.test_admin_messaging import ROLES, Answer, Api
from tests.unit.test_openapi import schema_validator

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
POOL = [f"VIP20-{n:04d}" for n in range(40)]


def store_of(stack: Stack) -> OfferStore:
    return OfferStore(stack.output("DataTableName"), client=stack.clients.dynamodb())


def pooled_offer(offer_id: str = "vip-20", **changes: Any) -> Offer:
    document: dict[str, Any] = {
        "id": offer_id,
        "name": "VIP 20 % off",
        "kind": "percentage",
        "value": "20",
        "valid_until": "2026-12-31T23:59:59Z",
    }
    document.update(changes)
    return Offer.model_validate(document)


@pytest.fixture
def api(stack: Stack) -> Api:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=NOW)
    stack.load("ProfileUpdaterFunction", clock=fixed(NOW)).lambda_handler(
        sample("profile_updater", "sqs-batch"), Context()
    )
    return Api(stack, stack.load("AdminFunction", clock=fixed(NOW)))


# ------------------------------------------------------------------------------ concurrency
def test_fifty_concurrent_claims_on_forty_codes_issue_each_code_once_and_refuse_ten(stack: Stack) -> None:
    # Given an offer whose pool holds 40 codes
    store = store_of(stack)
    offer = pooled_offer()
    store.create(offer)
    assert store.upload(offer.id, POOL, NOW).added == 40
    issuer = OfferIssuer(store)
    start = threading.Barrier(50)

    def claim(person: int) -> Any:
        start.wait()  # every caller asks at once
        return issuer.issue(offer, f"prof_{person:02d}", f"journey:cart:step-2:{person}", [], NOW)

    # When 50 people's steps ask for a code at the same time
    with ThreadPoolExecutor(max_workers=50) as threads:
        answers = list(threads.map(claim, range(50)))

    # Then 40 are given a code, each code to one person, and 10 are refused for an empty pool
    given = [a for a in answers if a.outcome == "issued"]
    refused = [a for a in answers if a.outcome == "refused"]
    assert len(given) == 40 and len(refused) == 10
    assert sorted(a.code for a in given) == sorted(POOL)
    assert {a.reason for a in refused} == {"pool_exhausted"}
    # And the store agrees: every slot issued to a distinct holder, the cursor at 40
    slots, _ = store.slots(offer.id, 100, None)
    assert Counter(s["state"] for s in slots) == {"issued": 40}
    assert len({s["holder"] for s in slots}) == 40
    assert store.pool(offer.id).next == 40
    assert store.stats(offer.id)["refused_pool_exhausted"] == 10
    # And each refused person's refusal is kept with its reason
    refused_people = [i for i, a in enumerate(answers) if a.outcome == "refused"]
    assert all(
        (store.refusal(f"prof_{i:02d}", offer.id, f"journey:cart:step-2:{i}") or {}).get("reason") == "pool_exhausted"
        for i in refused_people
    )

    # When every step is delivered again
    with ThreadPoolExecutor(max_workers=50) as threads:
        again = list(
            threads.map(lambda i: issuer.issue(offer, f"prof_{i:02d}", f"journey:cart:step-2:{i}", [], NOW), range(50))
        )

    # Then no second code is taken: the same code for the same cause, the same refusals counted once
    assert [a.code for a in again] == [a.code for a in answers]
    assert [a.outcome for a in again if a.code] == ["same_cause"] * 40
    assert store.pool(offer.id).next == 40
    assert store.stats(offer.id)["refused_pool_exhausted"] == 10


def test_a_pool_running_low_raises_its_alarm_once_however_many_claim_at_once(stack: Stack) -> None:
    # Given a pool of 12 codes, low at 4 left, and the alarm recorded
    store = store_of(stack)
    offer = pooled_offer(pool_low_at=4)
    store.create(offer)
    store.upload(offer.id, POOL[:12], NOW)
    alarms: list[tuple[str, int]] = []
    issuer = OfferIssuer(store, pool_low=lambda low, remaining: alarms.append((low.id, remaining)))
    start = threading.Barrier(12)

    def claim(person: int) -> Any:
        start.wait()
        return issuer.issue(offer, f"prof_{person:02d}", "campaign:spring", [], NOW)

    # When 12 people claim at once, and their causes are asked again
    with ThreadPoolExecutor(max_workers=12) as threads:
        assert {a.outcome for a in threads.map(claim, range(12))} == {"issued"}
    for person in range(12):
        issuer.issue(offer, f"prof_{person:02d}", "campaign:spring", [], NOW)

    # Then the alarm was raised once, when 4 were left
    assert alarms == [("vip-20", 4)]
    assert store.pool(offer.id).next == 12

    # When the pool is refilled and runs down again, it is raised again
    store.upload(offer.id, POOL[12:20], NOW)
    for person in range(12, 20):
        issuer.issue(offer, f"prof_{person:02d}", "campaign:spring", [], NOW)
    assert alarms == [("vip-20", 4), ("vip-20", 4)]


def test_a_person_holding_a_valid_code_gets_it_again_for_another_cause(stack: Stack) -> None:
    store = store_of(stack)
    offer = pooled_offer(budget={"per_person": 2})
    store.create(offer)
    store.upload(offer.id, POOL[:5], NOW)
    issuer = OfferIssuer(store)

    first = issuer.issue(offer, "prof_ann", "rule:welcome:fire-1", [], NOW)
    second = issuer.issue(offer, "prof_ann", "campaign:winter:msg-9", [], NOW)

    assert first.outcome == "issued" and second.outcome == "already_held"
    assert second.code == first.code
    assert store.pool(offer.id).next == 1


def test_refusals_carry_their_reason(stack: Stack) -> None:
    store = store_of(stack)
    issuer = OfferIssuer(store)
    ended = pooled_offer("ended", valid_until="2026-11-01T00:00:00Z")
    members = pooled_offer("members", segments=["vip"])
    capped = pooled_offer("capped", budget={"total": 1})
    for offer in (ended, members, capped):
        store.create(offer)
        store.upload(offer.id, [f"{offer.id.upper()}-{n}" for n in range(3)], NOW)

    assert issuer.issue(ended, "prof_a", "c1", [], NOW).reason == "outside_validity"
    assert issuer.issue(members, "prof_a", "c1", ["newcomers"], NOW).reason == "segment_not_allowed"
    assert issuer.issue(members, "prof_a", "c2", ["vip"], NOW).outcome == "issued"
    assert issuer.issue(capped, "prof_a", "c1", [], NOW).outcome == "issued"
    assert issuer.issue(capped, "prof_b", "c1", [], NOW).reason == "budget_exhausted"
    assert store.stats(capped.id)["refused_budget_exhausted"] == 1


def test_generated_codes_are_unique_and_carry_a_check_character(stack: Stack) -> None:
    from midstage.logic.offers import has_valid_check

    store = store_of(stack)
    offer = pooled_offer("welcome", source="generated", generated={"pattern": "WELCOME-XXXXXX"})
    store.create(offer)
    issuer = OfferIssuer(store)

    codes = [issuer.issue(offer, f"prof_{i}", "welcome", [], NOW).code for i in range(30)]

    assert len(set(codes)) == 30
    assert all(c is not None and c.startswith("WELCOME-") and has_valid_check(c) for c in codes)
    assert store.coupon(str(codes[7])) == (offer.id, 7)


def test_an_upload_leaves_out_codes_that_are_in_another_offer(stack: Stack) -> None:
    store = store_of(stack)
    store.create(pooled_offer("first"))
    store.create(pooled_offer("second"))
    store.upload("first", ["SHARED-1", "ONLY-1"], NOW)

    done = store.upload("second", ["SHARED-1", "ONLY-2"], NOW)

    assert done.added == 1 and done.duplicates == ["SHARED-1"]
    assert store.coupon("SHARED-1") == ("first", 0)


def test_an_upload_cut_short_completes_when_sent_again(stack: Stack) -> None:
    # Given an upload that named its first code for the offer and stopped before filling its slot
    store = store_of(stack)
    store.create(pooled_offer())
    assert store._claim_name("VIP20-0000", "vip-20") is None

    # When the same codes are sent again
    done = store.upload("vip-20", POOL[:2], NOW)

    # Then both are in the pool, in order, and the first is not taken for another offer's
    assert done.added == 2 and done.duplicates == []
    assert [s["coupon"] for s in store.slots("vip-20", 10, None)[0]] == POOL[:2]
    assert store.coupon("VIP20-0000") is not None


def test_a_paused_offer_refuses_with_its_reason(stack: Stack) -> None:
    store = store_of(stack)
    offer = pooled_offer(enabled=False)
    store.create(offer)
    store.upload(offer.id, POOL[:1], NOW)

    assert OfferIssuer(store).issue(offer, "prof_a", "c", [], NOW).reason == "offer_disabled"
    assert store.pool(offer.id).next == 0


# ------------------------------------------------------------------------------ admin API
def documented(answer: Answer, schema: str) -> Any:
    """The answer's body, checked against its schema in docs/openapi.yaml."""
    errors = list(schema_validator({"$ref": f"#/components/schemas/{schema}"}).iter_errors(answer.body))
    assert not errors, [e.message for e in errors[:3]]
    return answer.body


def test_the_admin_api_defines_fills_issues_lists_and_counts(api: Api) -> None:
    created = api.post(
        "/v1/offers", {"id": "vip-20", "name": "VIP", "kind": "percentage", "value": 20}, role="marketer"
    )
    assert created.status == 201, created.body
    documented(created, "Offer")
    uploaded = api.call(
        "POST",
        "/v1/offers/vip-20/codes",
        raw="code\nVIP-A1\nVIP-A2\nVIP-A3\n",
        headers={"content-type": "text/csv"},
        role="marketer",
    )
    assert uploaded.status == 200 and uploaded["added"] == 3, uploaded.body
    documented(uploaded, "CodeUploadResult")

    issued = api.post("/v1/offers/vip-20/issue", {"profile": "user_id:ann", "cause": "manual-1"}, role="marketer")
    again = api.post("/v1/offers/vip-20/issue", {"profile": "user_id:ann", "cause": "manual-1"}, role="marketer")

    assert issued.status == 200 and issued["outcome"] == "issued" and issued["coupon"] == "VIP-A1"
    assert again["outcome"] == "same_cause" and again["coupon"] == "VIP-A1"
    documented(issued, "IssueResult")
    listed = api.get("/v1/offers/vip-20/codes", query={"state": "issued"}, role="viewer")
    assert [c["coupon"] for c in documented(listed, "OfferCodeList")["codes"]] == ["VIP-A1"]
    stats = api.get("/v1/offers/vip-20/stats", role="viewer")
    documented(stats, "OfferStats")
    assert stats["issued"] == 1 and stats["remaining"] == 2 and stats["poolSize"] == 3
    listing = api.get("/v1/offers", role="viewer")
    assert [o["id"] for o in documented(listing, "OfferList")["offers"]] == ["vip-20"]


def test_the_admin_api_refuses_bad_input_with_codes(api: Api) -> None:
    api.post("/v1/offers", {"id": "gen", "name": "G", "kind": "gift", "source": "generated"})

    assert api.post("/v1/offers", {"id": "x", "name": "X", "kind": "percentage", "value": 120}).status == 400
    assert api.post("/v1/offers", {"id": "gen", "name": "G", "kind": "gift"}).status == 409
    assert api.post("/v1/offers/gen/codes", {"codes": ["A-123"]})["code"] == "offer_not_pooled"
    api.post("/v1/offers", {"id": "pool", "name": "P", "kind": "free_shipping"})
    assert api.post("/v1/offers/pool/codes", {"codes": ["no spaces"]})["code"] == "invalid_codes"
    assert api.post("/v1/offers/pool/codes", {"nope": 1})["code"] == "invalid_codes"
    assert api.get("/v1/offers/pool/codes", query={"state": "lost"})["code"] == "invalid_query"
    assert api.get("/v1/offers/missing").status == 404
    assert api.post("/v1/offers", {"id": "v", "name": "V", "kind": "gift"}, role="viewer").status == 403
    # And a deleted offer is gone from the API, its id not reused
    assert api.delete("/v1/offers/pool", role="marketer").status == 204
    assert api.get("/v1/offers/pool").status == 404
    assert api.post("/v1/offers", {"id": "pool", "name": "P", "kind": "gift"}).status == 409


def test_patch_changes_the_window_and_refuses_an_inverted_one(api: Api) -> None:
    api.post("/v1/offers", {"id": "w", "name": "W", "kind": "gift"})

    patched = api.patch("/v1/offers/w", {"valid_until": "2027-01-01T00:00:00Z", "name": "Winter"})
    bad = api.patch("/v1/offers/w", {"valid_from": "2027-02-01T00:00:00Z"})

    assert patched.status == 200 and patched["valid_until"] == "2027-01-01T00:00:00Z" and patched["name"] == "Winter"
    assert bad.status == 400 and bad["code"] == "invalid_offer"


# ------------------------------------------------------------------------------ redemption
def _order(
    message_id: str, profile_id: str, coupon: str, revenue: float, at: str = "2026-11-22T11:00:00.000Z"
) -> dict[str, Any]:
    event = copy.deepcopy(sample("evaluate_rules", "order-completed"))
    event["detail"]["profileId"] = profile_id
    tracked = event["detail"]["event"]
    tracked.update({"messageId": message_id, "timestamp": at})
    tracked["properties"].update({"coupon": coupon, "revenue": revenue, "discount": 5})
    return event


def test_orders_with_coupons_are_recorded_by_outcome(stack: Stack) -> None:
    # Given two people each holding a code, and a code past its offer's end
    store = store_of(stack)
    offer = pooled_offer()
    store.create(offer)
    store.upload(offer.id, POOL[:3], NOW)
    issuer = OfferIssuer(store)
    ann = issuer.issue(offer, "prof_ann", "c", [], NOW).code
    bob = issuer.issue(offer, "prof_bob", "c", [], NOW).code
    evaluator = stack.load("EvaluateRulesFunction", clock=fixed(NOW))

    # When Ann orders with her code (delivered twice), Cy with Bob's, Bob with a code from no pool,
    # and Ann's code is used again after the offer ended
    evaluator.lambda_handler(_order("o-1", "prof_ann", str(ann), 100.0), Context())
    evaluator.lambda_handler(_order("o-1", "prof_ann", str(ann), 100.0), Context())
    evaluator.lambda_handler(_order("o-2", "prof_cy", str(bob), 40.0), Context())
    evaluator.lambda_handler(_order("o-3", "prof_bob", "NOT-A-CODE", 10.0), Context())

    # Then each use is recorded for what it was, once
    assert store.use(offer.id, "src_localdemo|o-1")["outcome"] == "redeemed"  # type: ignore[index]
    assert store.use(offer.id, "src_localdemo|o-2")["outcome"] == "redeemed_by_other"  # type: ignore[index]
    assert [u["coupon"] for u in store.unknown_coupons(10)] == ["NOT-A-CODE"]
    stats = store.stats(offer.id)
    assert stats["redeemed"] == 2 and stats["revenue"] == 140 and stats["discount"] == 10
    assert stats["outcome_redeemed"] == 1 and stats["outcome_redeemed_by_other"] == 1
    slots, _ = store.slots(offer.id, 10, None)
    assert [(s["state"], s.get("redeemedBy")) for s in slots] == [
        ("redeemed", "prof_ann"),
        ("redeemed", "prof_cy"),
        ("available", None),
    ]


def test_a_code_used_after_its_offer_ended_is_recorded_as_late(stack: Stack) -> None:
    store = store_of(stack)
    offer = pooled_offer(valid_until="2026-11-30T00:00:00Z")
    store.create(offer)
    store.upload(offer.id, POOL[:1], NOW)
    code = OfferIssuer(store).issue(offer, "prof_ann", "c", [], NOW).code
    evaluator = stack.load("EvaluateRulesFunction", clock=fixed(NOW))

    evaluator.lambda_handler(_order("late", "prof_ann", str(code), 30.0, at="2026-12-02T09:00:00.000Z"), Context())

    assert store.use(offer.id, "src_localdemo|late")["outcome"] == "redeemed_after_expiry"  # type: ignore[index]
    assert store.stats(offer.id)["outcome_redeemed_after_expiry"] == 1


# ------------------------------------------------------------------------------ the rule action
def test_a_rule_issues_a_code_once_per_firing_and_its_send_carries_it(stack: Stack, api: Api) -> None:
    from midstage.models.messages import Delivery, parse_body
    from tests.integration.test_admin_messaging import email_template

    # Given an offer with a pool, an email template, and a rule that issues a code then sends it
    store = store_of(stack)
    store.create(pooled_offer())
    store.upload("vip-20", POOL[:3], NOW)
    assert api.post("/v1/templates", email_template()).status == 201
    rule = {
        "id": "thank-buyers",
        "name": "Thank buyers with a code",
        "trigger": {"type": "event", "event": "Order Completed"},
        "actions": [
            {"type": "issue_offer", "offer": "vip-20"},
            {"type": "send", "channels": ["email"], "template": "welcome-email"},
        ],
        "refire": {"mode": "every"},
    }
    assert api.post("/v1/rules", rule).status == 201, "the rule is accepted"
    order = sample("evaluate_rules", "order-completed")
    order["detail"]["profileId"] = api.ann_id()
    evaluator = stack.load("EvaluateRulesFunction", clock=fixed(NOW))

    # When the order's event reaches the rules twice (a redelivery)
    evaluator.lambda_handler(copy.deepcopy(order), Context())
    evaluator.lambda_handler(copy.deepcopy(order), Context())

    # Then one code was taken, and both sends carry that same code
    sends = [parse_body(Delivery, m["Body"]).request for m in api.queue("DeliveryQueue")]
    assert [s.vars.get("coupon") for s in sends] == ["VIP20-0000", "VIP20-0000"]
    assert store.pool("vip-20").next == 1
    assert store.holding(api.ann_id(), "vip-20").count == 1


def test_figures_per_cause_count_what_each_campaign_journey_and_rule_issued_and_what_was_redeemed(
    api: Api, stack: Stack
) -> None:
    # Given codes issued for two people of a campaign, one of a journey, one of a rule and one by hand
    store = store_of(stack)
    offer = pooled_offer()
    store.create(offer)
    store.upload(offer.id, POOL[:6], NOW)
    issuer = OfferIssuer(store)
    given = {
        cause: issuer.issue(offer, person, cause, [], NOW).code
        for person, cause in [
            ("prof_ann", "campaign:black-friday:prof_ann"),
            ("prof_bob", "campaign:black-friday:prof_bob"),
            ("prof_cy", "journey:abandoned-cart:prof_cy:1:issue-coupon:2"),
            ("prof_di", "rule:vip-winback:0:2026-11-22:prof_di"),
            ("prof_ed", "support-ticket-8812"),
        ]
    }
    # and the same campaign cause asked again (a redelivery) takes nothing more
    issuer.issue(offer, "prof_ann", "campaign:black-friday:prof_ann", [], NOW)
    evaluator = stack.load("EvaluateRulesFunction", clock=fixed(NOW))

    # When Ann and Cy order with their codes
    evaluator.lambda_handler(_order("o-1", "prof_ann", str(given["campaign:black-friday:prof_ann"]), 100.0), Context())
    cy_code = str(given["journey:abandoned-cart:prof_cy:1:issue-coupon:2"])
    evaluator.lambda_handler(_order("o-2", "prof_cy", cy_code, 40.0), Context())

    # Then the offer's figures say what each cause issued and what its codes brought
    stats = api.get("/v1/offers/vip-20/stats", role="viewer")
    documented(stats, "OfferStats")
    assert stats["byCause"] == {
        "api": {"issued": 1, "redeemed": 0, "redemptionRate": 0.0, "revenue": 0, "discountCost": 0},
        "campaign:black-friday": {"issued": 2, "redeemed": 1, "redemptionRate": 0.5, "revenue": 100, "discountCost": 5},
        "journey:abandoned-cart": {"issued": 1, "redeemed": 1, "redemptionRate": 1.0, "revenue": 40, "discountCost": 5},
        "rule:vip-winback": {"issued": 1, "redeemed": 0, "redemptionRate": 0.0, "revenue": 0, "discountCost": 0},
    }
    assert stats["issued"] == 5 and stats["redeemed"] == 2


def test_figures_per_cause_are_bounded_whatever_causes_callers_name(stack: Stack) -> None:
    from midstage.logic.offers import MAX_CAUSE_GROUPS

    # Given a generated offer, and callers naming a new campaign in every cause, one more than
    # the offer counts on their own, and a cause whose "id" is not an id
    store = store_of(stack)
    offer = pooled_offer("gen-5", source="generated", budget={"total": 1000, "per_person": 1})
    store.create(offer)
    issuer = OfferIssuer(store)
    for n in range(MAX_CAUSE_GROUPS + 2):
        assert issuer.issue(offer, f"prof_{n:03d}", f"campaign:c-{n:03d}:prof_{n:03d}", [], NOW).outcome == "issued"
    assert issuer.issue(offer, "prof_odd", "campaign:Not#An/Id:1", [], NOW).outcome == "issued"
    # and the last overflowing code is used in an order
    last = f"prof_{MAX_CAUSE_GROUPS + 1:03d}"
    code = issuer.issue(offer, last, f"campaign:c-{MAX_CAUSE_GROUPS + 1:03d}:{last}", [], NOW).code
    stack.load("EvaluateRulesFunction", clock=fixed(NOW)).lambda_handler(_order("o-x", last, str(code), 9.0), Context())

    # Then the figures count the first MAX_CAUSE_GROUPS campaigns each on its own, the rest under
    # "other" (with the order's figures), and the malformed cause under "api"; nothing is lost
    groups = rules_by_cause(store.stats(offer.id))
    named = [g for g in groups if g.startswith("campaign:")]
    assert len(named) == MAX_CAUSE_GROUPS
    assert groups["other"]["issued"] == 2 and groups["other"]["redeemed"] == 1 and groups["other"]["revenue"] == 9
    assert groups["api"]["issued"] == 1
    assert sum(g["issued"] for g in groups.values()) == MAX_CAUSE_GROUPS + 3 == store.pool(offer.id).next


def rules_by_cause(counts: Any) -> dict[str, dict[str, Any]]:
    from midstage.logic.offers import as_json, by_cause

    return as_json(by_cause(counts))
