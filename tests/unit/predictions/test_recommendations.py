"""Item-to-item similarities against scikit-learn's cosine, and recommendations counted by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from midstage.logic.predictions.co_occurrence import ItemSettings, fit_items
from midstage.logic.predictions.recommendations import recommend

# Four baskets: tent and stove go together (3 people), tent and lamp once, mug alone twice.
BASKETS = {
    "ann": ["tent", "stove", "lamp"],
    "bob": ["tent", "stove"],
    "cat": ["tent", "stove", "mug"],
    "dan": ["mug"],
    "eve": ["lamp", "mug"],
}


def purchases() -> list[tuple[str, str, str]]:
    return [(person, item, "purchase") for person, items in BASKETS.items() for item in items]


def test_purchase_similarity_is_the_cosine_of_the_buyer_columns() -> None:
    # Given random purchases and views of 30 items by 400 people (some bought twice)
    rng = np.random.default_rng(3)
    rows = []
    for person in range(400):
        for item in rng.choice(30, size=rng.integers(1, 8), replace=True):
            rows.append((f"p{person}", f"i{item:02d}", "purchase"))
        for item in rng.choice(30, size=rng.integers(0, 5), replace=False):
            rows.append((f"p{person}", f"i{item:02d}", "view"))
    # When the item model keeps every neighbour, purchases only
    model = fit_items(rows, ItemSettings(view_weight=0.0, neighbours=200, min_together=1))
    # Then each similarity is scikit-learn's cosine of the 0/1 people x items purchase matrix
    items = sorted({r[1] for r in rows})
    people = sorted({r[0] for r in rows})
    x = np.zeros((len(people), len(items)))
    for person, item, kind in rows:
        if kind == "purchase":
            x[people.index(person), items.index(item)] = 1.0
    expected = cosine_similarity(x.T)
    checked = 0
    for item, neighbours in model.neighbours.items():
        for other, similarity in neighbours:
            assert similarity == pytest.approx(expected[items.index(item), items.index(other)], abs=1e-6)
            checked += 1
    # And every pair bought together by someone is there (30 x 29 ordered pairs, nearly all)
    assert checked == int(((x.T @ x) > 0).sum() - np.count_nonzero(np.diag(x.T @ x)))


def test_neighbours_are_ranked_and_need_enough_people_together() -> None:
    # Given the baskets, with pairs needing 2 people behind them
    model = fit_items(purchases(), ItemSettings(min_together=2))
    # Then tent and stove are each other's only neighbour: cosine 3 / sqrt(3 x 3) = 1
    assert model.neighbours == {"tent": [("stove", 1.0)], "stove": [("tent", 1.0)]}
    # And popularity is by distinct buyers (ties by id)
    assert model.popular == ["mug", "stove", "tent", "lamp"]
    # And with one person enough, tent's neighbours are stove (1.0), then lamp and mug
    loose = fit_items(purchases(), ItemSettings(min_together=1))
    assert [item for item, _ in loose.neighbours["tent"]] == ["stove", "lamp", "mug"]
    assert dict(loose.neighbours["tent"])["lamp"] == pytest.approx(1 / np.sqrt(3 * 2), abs=1e-6)


def test_views_add_their_weighted_cosine() -> None:
    # Given no purchases in common, but three people who viewed both a and b
    rows = [(p, item, "view") for p in ("x", "y", "z") for item in ("a", "b")] + [("w", "a", "purchase")]
    # When fitted with views weighted 0.3
    model = fit_items(rows, ItemSettings(view_weight=0.3))
    # Then a and b are neighbours with 0.3 x 1.0
    assert model.neighbours["a"] == [("b", 0.3)]


def test_recommendations_follow_the_neighbours_then_popularity_without_what_was_bought() -> None:
    model = fit_items(purchases(), ItemSettings(min_together=1)).to_parameters()
    # Given someone who bought a tent: the stove first, then lamp and mug
    assert recommend(model, purchased=["tent"], k=3) == ["stove", "lamp", "mug"]
    # Given someone who bought a tent and a stove: never those two again
    assert recommend(model, purchased=["tent", "stove"], k=2) == ["lamp", "mug"]
    # Given someone who only viewed a tent: its neighbours, the tent itself allowed
    assert recommend(model, viewed=["tent"], k=1) == ["stove"]
    # Given no history: the most popular items
    assert recommend(model, k=2) == ["mug", "stove"]
    # Given a catalogue smaller than k: what there is
    assert recommend(model, purchased=["mug"], k=10) == ["lamp", "stove", "tent"]
    assert recommend(model, k=0) == []


def test_the_model_is_the_same_whatever_the_order_of_the_rows() -> None:
    rows = purchases()
    assert fit_items(rows) == fit_items(list(reversed(rows)))


def test_a_person_is_shown_their_stored_list_and_someone_without_one_the_best_sellers() -> None:
    from midstage.logic.predictions.recommendations import for_person, popular_of

    stored = {"predicted": {"recommendations": {"value": ["socks", "scarf"], "model": "recommendations.v2"}}}
    popular = popular_of({"popular": ["shoes", "hat"], "neighbours": {}})
    assert for_person(stored, popular) == ["socks", "scarf"]
    assert for_person({"plan": "pro"}, popular) == ["shoes", "hat"]
    assert for_person({"predicted": {"churn_risk": {"value": 0.2}}}, popular) == ["shoes", "hat"]
    assert for_person({}, popular_of(None)) == []


class _Texts:
    """The SMS provider port, keeping what would be sent."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, number: str, body: str, sms_type: str, sender_id: str | None) -> str:
        self.bodies.append(body)
        return f"sms-{len(self.bodies)}"


def test_the_deliverer_shows_a_persons_stored_list_and_reads_the_best_sellers_only_for_who_has_none() -> None:
    from datetime import UTC, datetime

    from midstage.adapters.channels import ChannelSenders, ChannelSettings
    from midstage.clock import fixed
    from midstage.logic.delivery import Address
    from midstage.models.messaging import MessageRequest, Template
    from midstage.models.profile import Profile

    reads: list[int] = []

    def best_sellers() -> list[str]:
        reads.append(1)
        return ["shoes", "hat", "socks"]

    texts = _Texts()
    settings = ChannelSettings("no-reply@example.com", "", "", "", "UTC")  # no links: nothing to sign
    senders = ChannelSenders(
        settings, lambda name: None, sms=texts, popular=best_sellers, clock=fixed(datetime(2026, 12, 7, tzinfo=UTC))
    )  # type: ignore[arg-type]
    request = MessageRequest(
        key="api:x:ann",
        origin={"kind": "api", "id": "x"},
        profile_id="p1",
        channels=["sms"],
        template="picks",
        requested_at="2026-12-07T00:00:00.000Z",
        category="transactional",
    )
    picks = Template(
        id="picks",
        name="picks",
        channel="sms",
        locales={"en": {"body": "{{ recommendations(2) | join(', ') }}"}},
        default_locale="en",
    )
    plain = Template(id="plain", name="plain", channel="sms", locales={"en": {"body": "hello"}}, default_locale="en")
    stored = {"predicted": {"recommendations": {"value": ["socks", "scarf", "hat"], "model": "recommendations.v1"}}}
    ann = Profile(id="p1", created_at="2026-01-01T00:00:00.000Z", traits=stored)
    bob = Profile(id="p2", created_at="2026-01-01T00:00:00.000Z")

    senders.send("sms", request, ann, Address("+15555550100"), picks)
    senders.send("sms", request, bob, Address("+15555550101"), plain)
    assert reads == []  # neither a stored list nor a template without recommendations reads them
    senders.send("sms", request, bob, Address("+15555550101"), picks)
    assert texts.bodies == ["socks, scarf", "hello", "shoes, hat"] and reads == [1]


def test_an_item_model_too_large_for_the_store_keeps_the_neighbours_of_its_best_sellers() -> None:
    import random

    from midstage.adapters.documents import pack
    from midstage.adapters.model_cards import fitting
    from midstage.logic.predictions.cards import DataWindow, ModelCard, new_card

    rng = random.Random(3)
    items = [f"sku-{n:05d}-{rng.getrandbits(64):016x}" for n in range(4000)]
    neighbours = {item: [[rng.choice(items), round(rng.random(), 6)] for _ in range(20)] for item in items}
    window = DataWindow(start=None, calibration_end="2026-12-07", people=9, records=9)
    card = new_card(
        "recommendations", 3, "2026-12-07T03:00:00.000Z", window, {"neighbours": neighbours, "popular": items[:50]}
    )
    assert len(pack(card.to_json())) > 350 * 1024

    stored = fitting(card)

    kept = stored.parameters["neighbours"]
    assert len(pack(stored.to_json())) <= 350 * 1024 and 0 < len(kept) < len(neighbours)
    assert set(items[: min(50, len(kept))]) <= set(kept)  # the best sellers' lists stay first
    assert stored.parameters["popular"] == items[:50]
    assert stored.notes[-1].startswith(f"stored with the neighbours of {len(kept)} of 4000 items")
    assert ModelCard.from_json(stored.to_json()) == stored  # its digest is the trimmed card's
    small = new_card("recommendations", 1, "2026-12-07T03:00:00.000Z", window, {"neighbours": {}, "popular": ["a"]})
    assert fitting(small) is small
