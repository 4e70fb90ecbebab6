"""The test model itself must be right before it can judge anything."""

from __future__ import annotations

from tests.oneid_model import expected_profiles, generate


def test_the_model_links_each_person_into_exactly_one_profile() -> None:
    events = generate(1, people=5, events_per_person=6)
    profiles = expected_profiles(events)
    assert len(profiles) == 5
    for profile in profiles:
        assert len([i for i in profile.identifiers if i.startswith("user_id:")]) == 1


def test_the_model_ignores_duplicates_and_is_order_independent() -> None:
    events = generate(2, people=4)
    once = expected_profiles(events)
    twice = expected_profiles(list(reversed(events)) + events[:10])
    key = lambda p: sorted(p.identifiers)  # noqa: E731
    assert sorted(map(key, once)) == sorted(map(key, twice))
    by_ids = {tuple(key(p)): (p.orders, p.revenue, dict(p.counts)) for p in once}
    for p in twice:
        assert by_ids[tuple(key(p))] == (p.orders, p.revenue, dict(p.counts))
