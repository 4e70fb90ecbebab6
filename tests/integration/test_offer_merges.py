"""A merged-away profile's offer code on moto: once OneID merges two profiles (through the real
profile updater), the survivor holds the code the merged-away profile was given: asking again
gives that code, and the survivor's order with it is the holder's redemption."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.offer_store import OfferStore
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import fixed
from midstage.logic import internal_events
from midstage.models.offers import Offer
from midstage.models.profile import Profile
from midstage.services.offers import OfferIssuer
from tests.integration.conftest import Context, Stack, apply_ingest_queue, sample

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _offer() -> Offer:
    return Offer.model_validate(
        {"id": "vip-20", "name": "VIP", "kind": "percentage", "value": "20", "valid_until": "2026-12-31T23:59:59Z"}
    )


def _send(stack: Stack, *events: dict[str, Any]) -> None:
    handoff = SqsHandoff(stack.output("IngestQueueUrl"), client=stack.clients.sqs())
    handoff.send({internal_events.person_key(e): [e] for e in events})
    apply_ingest_queue(stack, stack.load("ProfileUpdaterFunction", clock=fixed(NOW)))


def _event(n: int, **who: str) -> dict[str, Any]:
    return internal_events.identify(
        who, {"plan": "pro"}, message_id=f"ms-int-merge-{n}", timestamp="2026-11-22T09:00:00.000Z"
    )


def _profile(stack: Stack, kind: str, value: str) -> Profile:
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    owner = store.identity_owners([(kind, value)])[(kind, value)]
    found = store.profile(owner)
    assert found is not None
    return found


def test_after_a_merge_the_survivor_holds_and_redeems_the_merged_away_profiles_code(stack: Stack) -> None:
    # Given a visitor known by an anonymous id, given a code, and a customer known by a user id
    store = OfferStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    offer = _offer()
    store.create(offer)
    store.upload(offer.id, ["VIP20-0001", "VIP20-0002"], NOW)
    issuer = OfferIssuer(store)
    _send(stack, _event(1, anonymousId="visitor-1"), _event(2, userId="customer-1"))
    visitor = _profile(stack, "anonymous_id", "visitor-1")
    customer = _profile(stack, "user_id", "customer-1")
    assert visitor.id != customer.id
    code = issuer.issue(offer, visitor.id, "campaign:welcome:v", [], NOW).code
    assert code == "VIP20-0001"

    # When the visitor signs in: one event names both, and OneID merges them
    _send(stack, _event(3, userId="customer-1", anonymousId="visitor-1"))
    survivor = _profile(stack, "user_id", "customer-1")
    merged_away = ({visitor.id, customer.id} - {survivor.id}).pop()
    assert survivor.merged_from == [merged_away]
    assert merged_away == visitor.id  # the user id's profile survives (OneID's ranking)

    # Then the person, asked for a code again (a template's offer(), another campaign), is given
    # the code they hold, and the pool's other code stays available
    issuer = OfferIssuer(store)
    again = issuer.issue(offer, survivor.id, "message:m-7", [], NOW, survivor.merged_from)
    assert (again.outcome, again.code) == ("already_held", code)
    assert issuer.issue(offer, survivor.id, "campaign:welcome:v", [], NOW, survivor.merged_from).code == code
    assert store.pool(offer.id).next == 1
    assert store.holding(survivor.id, offer.id).absorbed == (merged_away,)

    # And their order with it, arriving under the survivor, is the holder's redemption
    order = copy.deepcopy(sample("evaluate_rules", "order-completed"))
    order["detail"]["profileId"] = survivor.id
    order["detail"]["event"].update({"messageId": "o-merged", "timestamp": "2026-11-22T11:00:00.000Z"})
    order["detail"]["event"]["properties"].update({"coupon": code, "revenue": 80.0})
    stack.load("EvaluateRulesFunction", clock=fixed(NOW)).lambda_handler(order, Context())
    use = store.use(offer.id, "src_localdemo|o-merged")
    assert use is not None and use["outcome"] == "redeemed"
    assert store.stats(offer.id)["outcome_redeemed"] == 1
