"""The analytics archive end to end: what goes in through the tracking API and the delivery path
lands in the local cloud's S3 as Parquet, partitioned by kind and day, through the template's
Firehose stream, and reads back with the reports' engine."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from midstage.adapters.archive_engines import S3Archive
from midstage.logic.analytics.reports import Query
from tests.e2e.conftest import Platform, status_of


def _archive(platform: Platform, cache: Path) -> S3Archive:
    bucket = platform.cloud.physical_name("ArchiveBucket")
    return S3Archive(bucket, "archive/", cache, client=platform.cloud.client("s3"))


def _rows(archive: S3Archive, kinds: tuple[str, ...], where: str, day: date) -> list[dict]:
    sql = f"SELECT * FROM archive WHERE {where} ORDER BY occurred_at, record_id"  # noqa: S608 -- test values only
    return archive.run(Query("rows", sql, kinds, day, day)).records()


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


def test_tracked_events_land_in_the_archive_partitioned_by_kind_and_day(
    platform: Platform, tag: str, tmp_path: Path
) -> None:
    # Given a person who arrives from a campaign link, views a product and orders
    user = f"arch-{tag}"
    day = datetime.now(UTC).date()
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    utm = {"campaign": {"source": "newsletter", "medium": "email", "name": f"spring-{tag}"}}
    batch = [
        {"type": "identify", "userId": user, "traits": {"email": f"{tag}@example.org"}, "timestamp": stamp},
        {"type": "page", "userId": user, "name": "Home", "context": utm, "timestamp": stamp},
        {"type": "track", "userId": user, "event": "Product Viewed", "properties": {"sku": "A1"}, "timestamp": stamp},
        {
            "type": "track",
            "userId": user,
            "event": "Order Completed",
            "properties": {"order_id": f"o-{tag}", "revenue": 42.5, "currency": "EUR"},
            "timestamp": stamp,
        },
    ]
    # When the events go in through the tracking API (one of them twice, as a client's retry)
    for number, event in enumerate(batch):
        event["messageId"] = f"arch-{tag}-{number}"
    first = platform.track("/v1/batch", {"batch": batch})
    assert first.status == 200, first.body
    platform.settle()
    retried = platform.track("/v1/batch", {"batch": batch[2:]})
    assert retried.status == 200, retried.body
    platform.settle()

    # Then each is one archive record of kind "event" on the profile it landed on
    rows = _rows(_archive(platform, tmp_path), ("event",), f"user_id = '{user}'", day)
    assert sorted((r["message_id"], r["event_type"], r["event"] or "") for r in rows) == [
        (f"arch-{tag}-0", "identify", ""),
        (f"arch-{tag}-1", "page", "Home"),
        (f"arch-{tag}-2", "track", "Product Viewed"),
        (f"arch-{tag}-3", "track", "Order Completed"),
    ]
    profile_id = platform.profile(f"user_id:{user}")["id"]
    assert {r["profile_id"] for r in rows} == {profile_id}
    assert {r["kind"] for r in rows} == {"event"} and {r["dt"] for r in rows} == {day.isoformat()}
    page, order = (next(r for r in rows if r["message_id"] == f"arch-{tag}-{n}") for n in (1, 3))
    assert (page["utm_source"], page["utm_medium"], page["utm_campaign"]) == ("newsletter", "email", f"spring-{tag}")
    assert (order["revenue"], order["currency"]) == (42.5, "EUR")
    assert len({r["record_id"] for r in rows}) == 4


def test_a_message_request_and_its_outcome_land_in_the_archive(platform: Platform, tag: str, tmp_path: Path) -> None:
    # Given a person with no email address and an approved email template
    user = f"arch-msg-{tag}"
    day = datetime.now(UTC).date()
    assert platform.track("/v1/identify", {"userId": user, "traits": {"first_name": "Ann"}}).status == 200
    template = {
        "id": f"arch-{tag}",
        "name": f"arch-{tag}",
        "channel": "email",
        "locales": {"en": {"subject": "Hi", "text": "Hello"}},
    }
    assert platform.admin("POST", "/v1/templates", template).status == 201
    assert platform.admin("POST", f"/v1/templates/arch-{tag}/approve", {"version": 1}).status == 200
    platform.settle()

    # When a marketing email is requested for that person
    body = {
        "profile": f"user_id:{user}",
        "channels": ["email"],
        "template": f"arch-{tag}",
        "category": "transactional",
        "idempotencyKey": f"arch-{tag}",
    }
    answer = platform.admin("POST", "/v1/messages", body)
    assert answer.status == 202, answer.body
    message_id = answer.body["messageId"]
    platform.settle()

    # Then the archive holds the request and the outcome, blocked with the guard that stopped it
    rows = _rows(
        _archive(platform, tmp_path), ("message_requested", "message_blocked"), f"message_id = '{message_id}'", day
    )
    assert [r["kind"] for r in rows] == ["message_requested", "message_blocked"], rows
    blocked = rows[1]
    assert (blocked["origin_kind"], blocked["template_id"], blocked["profile_id"]) == (
        "api",
        f"arch-{tag}",
        platform.profile(f"user_id:{user}")["id"],
    )
    # no channel could reach the person: the guard is why, the reason names the channel refused
    assert blocked["guard"] == "no_address" and "[email]" in blocked["reason"], blocked
    assert f"{tag}@" not in (blocked["reason"] or "")


def test_a_sent_email_and_what_follows_it_land_in_the_archive(platform: Platform, tag: str, tmp_path: Path) -> None:
    # Given a person with an address and an approved email with a link
    user, address = f"arch-fb-{tag}", f"fb-{tag}@example.org"
    day = datetime.now(UTC).date()
    assert platform.track("/v1/identify", {"userId": user, "traits": {"email": address}}).status == 200
    html = '<html><body><a href="https://shop.example.com/spring?x=1">shop</a></body></html>'
    template = {
        "id": f"fb-{tag}",
        "name": f"fb-{tag}",
        "channel": "email",
        "locales": {"en": {"subject": "S", "html": html}},
    }
    assert platform.admin("POST", "/v1/templates", template).status == 201
    assert platform.admin("POST", f"/v1/templates/fb-{tag}/approve", {"version": 1}).status == 200
    platform.settle()
    body = {"profile": f"user_id:{user}", "channels": ["email"], "template": f"fb-{tag}", "category": "transactional"}
    answer = platform.admin("POST", "/v1/messages", body)
    assert answer.status == 202, answer.body
    message_id = answer.body["messageId"]
    platform.settle()
    [email] = [e for e in platform.cloud.sent_emails() if address in e.to]

    # When SES reports the delivery, and the person clicks the tracked link
    platform.cloud.simulate_ses_event("Delivery", email.message_id, address)
    assert email.html is not None
    click = email.html.split('href="', 1)[1].split('"', 1)[0]
    assert status_of(click) == 302  # the redirect to the shop: not followed, there is no internet here
    platform.settle()

    # Then the archive tells the message's life in order, the click with its link
    kinds = ("message_requested", "message_sent", "message_delivered", "message_clicked")
    rows = _rows(_archive(platform, tmp_path), kinds, f"message_id = '{message_id}'", day)
    assert sorted(r["kind"] for r in rows) == sorted(kinds), rows
    clicked = next(r for r in rows if r["kind"] == "message_clicked")
    assert (clicked["link"], clicked["channel"]) == ("https://shop.example.com/spring?x=1", "email")
    sent = next(r for r in rows if r["kind"] == "message_sent")
    assert (sent["template_id"], sent["origin_kind"]) == (f"fb-{tag}", "api")
