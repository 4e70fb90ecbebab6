"""Consent that respects history: per channel and purpose the newest choice by the time it was
made wins, wherever it came from, and the outcome does not depend on arrival order."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage.config import IdentitySettings
from midstage.errors import IssuesError
from midstage.logic import consent
from midstage.logic import profile as logic
from midstage.logic.delivery import consent_refusal
from midstage.logic.imports import parse_pinpoint_endpoints
from midstage.models.profile import Profile
from midstage.models.requests import ConsentUpdate
from midstage.services.admin.people import ConsentAdmin
from tests.support.fakes import MemoryProfiles

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def choice(
    granted: bool, at: str, mid: str, *, channel: str = "email", source: str | None = None, purpose: str = "marketing"
) -> dict[str, Any]:
    properties: dict[str, Any] = {"channel": channel, "purpose": purpose, "granted": granted}
    if source is not None:
        properties["source"] = source
    return {
        "type": "track",
        "event": "Consent Updated",
        "messageId": mid,
        "timestamp": at,
        "sourceId": "midstage",
        "userId": "ann",
        "properties": properties,
    }


def applied(events: Iterable[Mapping[str, Any]]) -> Profile:
    profile = Profile(id="p1", created_at="2026-01-01T00:00:00.000Z", identities={"user_id": ["ann"]})
    for event in events:
        logic.apply_event(profile, event)
    return profile


def states(profile: Profile) -> dict[str, tuple[bool, str]]:
    return {key: (value["granted"], value["source"]) for key, value in profile.consent.items()}


# ------------------------------------------------------------------------------ newest wins
HISTORY = [
    choice(True, "2024-03-01T09:00:00.000Z", "signup", source="api"),
    choice(False, "2025-06-10T08:00:00.000Z", "pinpoint", source="import:imp_1"),
    choice(True, "2025-01-01T00:00:00.000Z", "old-crm", source="api"),
    choice(True, "2026-02-01T00:00:00.000Z", "blanket", channel="*", source="api"),
    choice(False, "2026-03-01T00:00:00.000Z", "stop", channel="sms", source="sms_stop"),
    choice(True, "2025-12-24T00:00:00.000Z", "sms-grant", channel="sms", source="preference_center"),
]


def test_given_writes_in_every_order_when_applied_then_the_newest_choice_per_channel_wins_each_time() -> None:
    outcomes = {json.dumps(states(applied(order)), sort_keys=True) for order in itertools.permutations(HISTORY)}
    assert len(outcomes) == 1
    assert states(applied(HISTORY)) == {
        "email:marketing": (False, "import:imp_1"),  # the 2025-06 refusal outlives the 2024 and 2025-01 grants
        "*:marketing": (True, "api"),
        "sms:marketing": (False, "sms_stop"),  # the STOP came after the preference centre's grant
    }


def test_given_an_import_opt_out_when_an_older_grant_arrives_later_then_the_opt_out_stands() -> None:
    # Given a Pinpoint endpoint that opted out (OptOut ALL), effective 2025-06-10
    endpoint = {
        "Id": "ep-1",
        "ChannelType": "EMAIL",
        "Address": "ann@example.com",
        "EndpointStatus": "ACTIVE",
        "OptOut": "ALL",
        "EffectiveDate": "2025-06-10T08:00:00.000Z",
        "User": {"UserId": "ann"},
    }
    report = parse_pinpoint_endpoints(json.dumps(endpoint), segment_id="migrated", import_id="imp_7", now=NOW)
    profile = applied(report.events)
    # When a grant from the team's own records, given in 2024, is recorded after the import
    logic.apply_event(profile, choice(True, "2024-03-01T09:00:00.000Z", "crm-grant", source="crm"))
    # Then marketing email stays refused, and the refusal says where it came from
    assert states(profile) == {"email:marketing": (False, "import:imp_7")}
    assert consent_refusal(profile, "email", "marketing", "opt_in").startswith(
        "no_consent: marketing on email was refused at 2025-06-10T08:00:00.000Z"
    )
    # And a blanket grant, even a newer one, does not lift the channel's own refusal
    logic.apply_event(profile, choice(True, "2026-01-01T00:00:00.000Z", "everything", channel="*"))
    assert consent_refusal(profile, "email", "marketing", "opt_in") != ""
    assert consent_refusal(profile, "sms", "marketing", "opt_in") == ""
    # But the person choosing email again, after the opt-out, does
    logic.apply_event(profile, choice(True, "2026-02-01T00:00:00.000Z", "re-subscribed", source="preference_center"))
    assert consent_refusal(profile, "email", "marketing", "opt_in") == ""


@pytest.mark.parametrize("first_refusal", [True, False])
def test_given_a_grant_and_a_refusal_at_the_same_instant_then_the_refusal_wins_in_either_order(
    first_refusal: bool,
) -> None:
    at = "2026-05-05T05:05:05.005Z"
    writes = [choice(False, at, "zzz-refusal", source="sms_stop"), choice(True, at, "aaa-grant", source="api")]
    profile = applied(writes if first_refusal else reversed(writes))
    assert states(profile) == {"email:marketing": (False, "sms_stop")}


def test_given_two_refusals_at_the_same_instant_then_the_kept_one_does_not_depend_on_order() -> None:
    at = "2026-05-05T05:05:05.005Z"
    writes = [choice(False, at, "m-1", source="unsubscribe"), choice(False, at, "m-2", source="import:imp_2")]
    assert states(applied(writes)) == states(applied(reversed(writes))) == {"email:marketing": (False, "import:imp_2")}


def test_given_the_same_history_split_across_two_profiles_when_merged_either_way_then_consent_is_the_same() -> None:
    one, other = applied(HISTORY[:3]), applied(HISTORY[3:])
    merged = [applied([]), applied([])]
    for survivor, parts in zip(merged, ((one, other), (other, one)), strict=True):
        for part in parts:
            logic.merge_into(survivor, part)
    assert states(merged[0]) == states(merged[1]) == states(applied(HISTORY))


def test_a_refusal_for_every_channel_newer_than_a_channel_grant_stops_that_channel_too() -> None:
    profile = applied(
        [
            choice(True, "2025-01-01T00:00:00.000Z", "grant"),
            choice(False, "2025-02-01T00:00:00.000Z", "all", channel="*"),
        ]
    )
    assert consent.governing(profile.consent, "email", "marketing") == ("*:marketing", profile.consent["*:marketing"])
    older = applied(
        [
            choice(True, "2025-03-01T00:00:00.000Z", "grant"),
            choice(False, "2025-02-01T00:00:00.000Z", "all", channel="*"),
        ]
    )
    assert consent.governing(older.consent, "email", "marketing") == (
        "email:marketing",
        older.consent["email:marketing"],
    )


def test_the_source_is_the_writes_own_else_unsubscribe_else_the_sending_source() -> None:
    unsubscribed = {**choice(False, "2026-01-01T00:00:00.000Z", "u"), "event": "Unsubscribed"}
    from_an_app = {**choice(True, "2026-01-02T00:00:00.000Z", "a", channel="sms"), "sourceId": "src_app"}
    profile = applied(
        [unsubscribed, from_an_app, choice(True, "2026-01-03T00:00:00.000Z", "p", channel="push", source=" x " * 200)]
    )
    assert profile.consent["email:marketing"]["source"] == "unsubscribe"
    assert profile.consent["sms:marketing"]["source"] == "src_app"
    assert len(profile.consent["push:marketing"]["source"]) == consent.MAX_SOURCE_CHARS


def test_the_view_lists_each_record_with_its_provenance_and_what_decides_each_channel() -> None:
    profile = applied(HISTORY)
    shown = consent.view(profile.consent)
    assert shown["consents"][0] == {
        "channel": "*",
        "purpose": "marketing",
        "state": "granted",
        "at": "2026-02-01T00:00:00.000Z",
        "source": "api",
        "messageId": "blanket",
    }
    assert [(c["channel"], c["state"], c["source"]) for c in shown["consents"]] == [
        ("*", "granted", "api"),
        ("email", "refused", "import:imp_1"),
        ("sms", "refused", "sms_stop"),
    ]
    assert shown["effective"] == [
        {"channel": "email", "purpose": "marketing", "state": "refused", "decidedBy": "email:marketing"},
        {"channel": "sms", "purpose": "marketing", "state": "refused", "decidedBy": "sms:marketing"},
        {"channel": "push", "purpose": "marketing", "state": "granted", "decidedBy": "*:marketing"},
        {"channel": "inbox", "purpose": "marketing", "state": "granted", "decidedBy": "*:marketing"},
    ]


# ------------------------------------------------------------------------------ the admin API's writes
class CapturedIngest:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, groups: Mapping[str, Sequence[dict[str, Any]]]) -> int:
        for events in groups.values():
            self.events.extend(events)
        return sum(len(events) for events in groups.values())


def admin(profile: Profile) -> tuple[ConsentAdmin, CapturedIngest]:
    ingest = CapturedIngest()
    service = ConsentAdmin(MemoryProfiles(profile), ingest, IdentitySettings(), clock=lambda: NOW)  # type: ignore[arg-type]
    return service, ingest


def test_an_api_write_is_dated_when_the_choice_was_made_and_defaults_to_its_receipt() -> None:
    profile = applied([choice(False, "2025-06-10T08:00:00.000Z", "pinpoint", source="import:imp_1")])
    service, ingest = admin(profile)
    dated = ConsentUpdate(channel="email", purpose="marketing", granted=True, timestamp="2024-03-01T10:00:00+01:00")
    answer = service.update_consent("p1", dated)
    assert (answer["timestamp"], answer["source"]) == ("2024-03-01T09:00:00.000Z", "admin-api")
    undated = service.update_consent("p1", ConsentUpdate(channel="sms", purpose="marketing", granted=True))
    assert undated["timestamp"] == "2026-11-22T12:00:00.000Z"
    assert [e["timestamp"] for e in ingest.events] == ["2024-03-01T09:00:00.000Z", "2026-11-22T12:00:00.000Z"]
    for event in ingest.events:
        logic.apply_event(profile, event)
    assert states(profile) == {"email:marketing": (False, "import:imp_1"), "sms:marketing": (True, "admin-api")}


def test_an_api_write_dated_in_the_future_is_refused_and_queues_nothing() -> None:
    service, ingest = admin(applied([]))
    later = (NOW + timedelta(hours=1)).isoformat()
    with pytest.raises(IssuesError) as refused:
        service.update_consent("p1", ConsentUpdate(channel="email", purpose="marketing", granted=True, timestamp=later))
    assert refused.value.code == "invalid_body"
    assert ingest.events == []


@pytest.mark.parametrize(
    "timestamp",
    ["2026-11-22T10:00:00", "yesterday", "0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59Z", "2026-13-01T00:00:00Z"],
)
def test_a_timestamp_without_a_zone_unreadable_or_before_1970_is_an_invalid_body(timestamp: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        ConsentUpdate(channel="email", purpose="marketing", granted=True, timestamp=timestamp)
