"""Interleaved events for overlapping identities, sent concurrently through the local cloud,
give exactly the profiles an independent sequential model computes, in any order."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.conftest import Platform
from tests.oneid_model import expected_profiles, generate


def send_concurrently(platform: Platform, events: list[dict[str, Any]], *, batch: int, workers: int) -> None:
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]

    def send(chunk: list[dict[str, Any]]) -> int:
        return platform.track("/v1/batch", {"batch": chunk}).status

    with ThreadPoolExecutor(max_workers=workers) as pool:
        statuses = list(pool.map(send, batches))
    assert set(statuses) == {200}


def assert_matches_model(platform: Platform, events: list[dict[str, Any]]) -> None:
    for expected in expected_profiles(events):
        first = sorted(expected.identifiers)[0]
        profile = platform.profile(first)
        held = {f"{t}:{v}" for t, values in profile["identities"].items() for v in values}
        assert held == expected.identifiers
        # Every identifier of the person resolves to that one profile: no duplicates.
        for identifier in expected.identifiers:
            assert platform.profile(identifier)["id"] == profile["id"], identifier
        traits = {k: v for k, (_, v) in expected.traits.items()}
        assert {k: profile_value for k, profile_value in profile["traits"].items() if k != "email"} == {
            k: v for k, v in traits.items() if k != "email"
        }
        counts = {name: c["total"] for name, c in profile["computed"]["event_counts"].items()}
        assert counts == dict(expected.counts)
        assert profile["computed"]["orders"] == expected.orders
        assert profile["computed"]["revenue"] == pytest.approx(float(expected.revenue), abs=1e-9)


@pytest.mark.parametrize("seed", [7, 2026])
def test_concurrent_interleaved_events_give_the_models_profiles(platform: Platform, seed: int) -> None:
    events = generate(seed)
    duplicates = random.Random(seed).sample(events, 15)  # resent by a retrying client
    send_concurrently(platform, events + duplicates, batch=7, workers=6)
    platform.settle()
    assert_matches_model(platform, events)


def test_the_same_events_shuffled_give_the_same_profiles(platform: Platform) -> None:
    events = generate(99)
    reordered = list(reversed(events))
    random.Random(5).shuffle(reordered)
    send_concurrently(platform, reordered, batch=3, workers=8)
    platform.settle()
    assert_matches_model(platform, events)
