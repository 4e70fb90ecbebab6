"""The real Segment and RudderStack Python clients, unchanged but for the host."""

from __future__ import annotations

import uuid

from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from tests.e2e.conftest import Platform


def test_segment_client_delivers_identify_track_page_alias_and_group(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    errors: list[Exception] = []
    client = SegmentClient(
        platform.write_key, host=platform.url, sync_mode=True, gzip=True, on_error=lambda e, _: errors.append(e)
    )
    client.identify(f"seg-{run}", {"email": f"Seg.{run}@Example.com", "plan": "pro"}, anonymous_id=f"anon-{run}")
    client.track(f"seg-{run}", "Order Completed", {"revenue": 19.5, "order_id": "o1"})
    client.track(f"seg-{run}", "Order Completed", {"revenue": 0.5, "order_id": "o2"})
    client.page(anonymous_id=f"anon-{run}", name="Pricing", properties={"url": "https://example.com/pricing"})
    client.group(f"seg-{run}", f"acme-{run}", {"name": "Acme"})
    client.track(anonymous_id=f"later-{run}", event="Product Viewed")
    client.alias(f"later-{run}", f"seg-{run}")
    client.flush()
    assert errors == []
    platform.settle()

    profile = platform.profile(f"email:seg.{run}@example.com")
    assert profile["identities"]["user_id"] == [f"seg-{run}"]
    assert sorted(profile["identities"]["anonymous_id"]) == sorted([f"anon-{run}", f"later-{run}"])
    assert profile["traits"]["plan"] == "pro"
    assert profile["computed"]["orders"] == 2
    assert profile["computed"]["revenue"] == 20.0
    counts = profile["computed"]["event_counts"]
    assert counts["$page"]["total"] == 1
    assert counts["Product Viewed"]["total"] == 1
    assert profile["groups"] == {f"acme-{run}": {"name": "Acme"}}
    assert platform.profile(f"anonymous_id:later-{run}")["id"] == profile["id"]


def test_rudderstack_client_with_gzip_delivers_a_batch(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    errors: list[Exception] = []
    client = RudderClient(
        platform.write_key, host=platform.url, sync_mode=True, gzip=True, on_error=lambda e, _: errors.append(e)
    )
    client.identify(f"rud-{run}", {"email": f"rud.{run}@example.com", "name": "Ru"})
    for i in range(25):
        client.track(f"rud-{run}", "Song Played", {"n": i})
    client.screen(f"rud-{run}", "Player")
    client.flush()
    assert errors == []
    platform.settle()

    profile = platform.profile(f"user_id:rud-{run}")
    assert profile["traits"]["name"] == "Ru"
    assert profile["computed"]["event_counts"]["Song Played"]["total"] == 25
    assert profile["computed"]["event_counts"]["$screen"]["total"] == 1
    timeline = platform.admin("GET", f"/v1/profiles/{profile['id']}/timeline?limit=10").body
    assert len(timeline["events"]) == 10
    assert timeline["cursor"]
    rest = platform.admin("GET", f"/v1/profiles/{profile['id']}/timeline?limit=50&cursor={timeline['cursor']}").body
    assert len(timeline["events"]) + len(rest["events"]) == 27
    assert not {e["messageId"] for e in timeline["events"]} & {e["messageId"] for e in rest["events"]}
