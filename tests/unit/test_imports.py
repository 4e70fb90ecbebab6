"""Static segment imports: CSV and Amazon Pinpoint exports in, internal events out.

The events are checked the way the profile updater will use them: applied to a profile with
logic/profile.apply_event, identified with logic/identity.identifiers_of.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from midstage.config import IdentitySettings
from midstage.errors import InvalidInput
from midstage.logic import profile as profile_logic
from midstage.logic.identity import identifiers_of
from midstage.logic.imports import (
    DEVICE_REGISTERED,
    MAX_CELL_BYTES,
    MAX_COLUMNS,
    MAX_ROWS,
    MAX_TEXT_BYTES,
    ImportRefused,
    ImportReport,
    detect_format,
    parse_csv,
    parse_import,
    parse_pinpoint_csv,
    parse_pinpoint_endpoints,
)
from midstage.logic.internal_events import SOURCE_ID, internal_id, person_key
from midstage.logic.segments import SegmentSet
from midstage.models.profile import Profile
from midstage.models.segments import Segment

FIXTURES = Path(__file__).parent.parent / "fixtures" / "imports"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
STAMP = "2026-11-22T12:00:00.000Z"
JOB: dict[str, Any] = {"segment_id": "spring_sale", "import_id": "imp_42", "now": NOW}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def by_person(report: ImportReport) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in report.events:
        grouped.setdefault(person_key(event), []).append(event)
    return grouped


def kinds(events: Iterable[dict[str, Any]]) -> list[str]:
    return [event["type"] if event["type"] == "identify" else event["event"] for event in events]


def applied(events: Iterable[dict[str, Any]]) -> Profile:
    profile = Profile(id="p1", created_at=STAMP)
    for event in events:
        profile_logic.apply_event(profile, event)
    return profile


def csv_report(text: str) -> ImportReport:
    return parse_csv(text, **JOB)


# ------------------------------------------------------------------------------------------ CSV
def test_a_realistic_csv_becomes_one_identify_and_one_segment_added_per_person() -> None:
    report = parse_csv(fixture("people.csv"), **JOB)

    people = by_person(report)
    assert report.accepted == 4 and report.people == 3 and len(people) == 3
    assert all(kinds(events) == ["identify", "Segment Added"] for events in people.values())
    assert all(event["sourceId"] == SOURCE_ID for event in report.events)
    assert {e["properties"]["segment"] for e in report.events if e["type"] == "track"} == {"spring_sale"}


def test_csv_rows_for_the_same_person_are_merged_later_values_winning() -> None:
    ann = by_person(parse_csv(fixture("people.csv"), **JOB))["u:u-100"]
    # Rows 2 and 9 name u-100: the later plan and note win, the earlier contact data stays
    assert ann[0]["traits"] == {
        "first_name": "Ann",
        "plan": "vip",
        "signup_note": "second row for Ann",
        "email": "ann.lee@example.com",
        "phone": "+12065550100",
    }
    assert ann[0]["messageId"] == internal_id("imp_42", "2", "identify")
    assert ann[1]["messageId"] == internal_id("imp_42", "2", "segment")


def test_csv_quoting_bom_crlf_and_formulas_are_read_as_text() -> None:
    people = by_person(parse_csv(fixture("people.csv"), **JOB))
    bob = people["u:u-101"][0]
    assert bob["traits"]["signup_note"] == 'Said: "call me"\nnext week'
    assert "user_id" not in bob["traits"]  # the BOM did not stick to the first column's name
    (carol_key,) = [key for key in people if key.startswith("a:")]
    carol = people[carol_key][0]
    assert carol["traits"]["signup_note"] == '=HYPERLINK("http://evil.example","click")'
    assert carol["traits"]["phone"] == "+442079460958"


def test_csv_rows_that_cannot_be_used_are_listed_with_their_line_and_why() -> None:
    report = parse_csv(fixture("people.csv"), **JOB)
    assert report.rejected == [
        {"line": 6, "reason": "email 'dee@' is not a valid email address"},
        {"line": 8, "reason": "no identifier: user_id, email, phone are all empty"},
    ]
    assert report.rejected_total == 2


def test_a_person_known_only_by_email_gets_a_stable_anonymous_id() -> None:
    # Every event needs a userId or anonymousId; the derived one is the same in every import
    first = csv_report("email,plan\ncarol@example.com,pro\n")
    again = parse_csv("EMAIL,plan\nCarol@Example.com,free\n", segment_id="other", import_id="imp_43", now=NOW)
    assert first.events[0]["anonymousId"] == again.events[0]["anonymousId"]
    assert first.events[0]["anonymousId"].startswith("import-email-")
    assert first.events[0]["userId"] is None


def test_imported_events_put_the_person_in_the_static_segment_on_their_profile() -> None:
    report = parse_csv(fixture("people.csv"), **JOB)
    events = by_person(report)["u:u-100"]
    profile = applied(events)

    assert profile.static_segments["spring_sale"] == [f"{STAMP}|{events[1]['messageId']}|midstage", True]
    assert profile.traits["plan"] == "vip"
    assert {("email", "ann.lee@example.com"), ("user_id", "u-100")} <= set(
        identifiers_of(events[1], IdentitySettings())
    )  # the Segment Added event finds the person by itself
    segments = SegmentSet([Segment(id="spring_sale", name="Spring sale", kind="static")])
    assert segments.evaluate(profile, NOW) == {"spring_sale": STAMP}


def test_message_ids_depend_on_import_line_and_kind_only() -> None:
    text = fixture("people.csv")
    first = parse_csv(text, **JOB)
    rerun = parse_csv(text, segment_id="spring_sale", import_id="imp_42", now=datetime(2027, 1, 1, tzinfo=UTC))
    other = parse_csv(text, segment_id="spring_sale", import_id="imp_43", now=NOW)

    ids = [event["messageId"] for event in first.events]
    assert ids == [event["messageId"] for event in rerun.events]
    assert len(set(ids)) == len(ids)
    assert not set(ids) & {event["messageId"] for event in other.events}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("first_name,plan\nAnn,pro\n", "no identifier column"),
        ("email,first name\na@example.com,Ann\n", "column 2 ('first name') is not a valid trait name"),
        ("email,.hidden\na@example.com,x\n", "column 2 ('.hidden') is not a valid trait name"),
        ("email,plan,plan\na@example.com,a,b\n", "'plan' appears twice"),
        ("user_id,userId\nu1,u1\n", "two columns hold userId"),
        ("email," + ",".join(f"c{n}" for n in range(MAX_COLUMNS)) + "\n", f"at most {MAX_COLUMNS}"),
        ('"email,plan\na@example.com,pro\n', "header row (line 1) is malformed"),
        ("\n\n  \n", "empty"),
    ],
)
def test_whole_file_problems_refuse_the_file(text: str, message: str) -> None:
    with pytest.raises(ImportRefused, match=re.escape(message)):
        csv_report(text)


def test_a_refusal_is_an_invalid_input_with_its_own_code() -> None:
    with pytest.raises(InvalidInput) as caught:
        csv_report("name\nAnn\n")
    assert caught.value.code == "invalid_import"
    assert caught.value.status == 400
    assert caught.value.to_body()["code"] == "invalid_import"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        b"email\n\xff\xfe\xfa not utf-8\n",
        bytes(range(1, 32)) * 40,
    ],
)
def test_binary_data_is_refused(data: bytes) -> None:
    with pytest.raises(ImportRefused, match=r"binary|not UTF-8"):
        parse_csv(data, **JOB)


def test_a_file_over_the_size_limit_is_refused() -> None:
    with pytest.raises(ImportRefused, match="limited to"):
        csv_report("email\n" + "a" * MAX_TEXT_BYTES)
    with pytest.raises(ImportRefused, match="limited to"):
        csv_report("email\n" + "é" * (MAX_TEXT_BYTES // 2))  # few characters, too many bytes


def test_more_rows_than_the_limit_refuses_the_file() -> None:
    text = "email\n" + "".join(f"p{n}@example.com\n" for n in range(MAX_ROWS + 1))
    with pytest.raises(ImportRefused, match="more than 100,000 rows"):
        csv_report(text)


def test_hostile_rows_are_rejected_without_sinking_the_others() -> None:
    wide = "x@example.com," + ",".join(["z"] * 10_000)
    huge = "y@example.com," + "w" * (MAX_CELL_BYTES + 1)
    text = f'email,note\nok1@example.com,fine\n{wide}\n{huge}\nok2@example.com,fine\nlast@example.com,"never closed\n'

    report = csv_report(text)

    assert report.accepted == 2
    assert [r["line"] for r in report.rejected] == [3, 4, 6]
    assert report.rejected[0]["reason"] == "10,001 fields where the header has 2"
    assert (
        report.rejected[1]["reason"] == f"column 'note' holds {MAX_CELL_BYTES + 1:,} bytes; at most {MAX_CELL_BYTES:,}"
    )
    assert report.rejected[2]["reason"] == "a quoted field is never closed"


def test_invalid_phones_and_blocked_identifiers_reject_their_row() -> None:
    report = csv_report("user_id,phone\nu1,0612345678\ntest,+33612345678\nu3,+33 6 12 34 56 78\n")
    assert report.rejected == [
        {
            "line": 2,
            "reason": "phone '0612345678' is not an international number (E.164: + country code, 7 to 15 digits)",
        },
        {"line": 3, "reason": "userId 'test' is a blocked value (placeholders are never identifiers)"},
    ]
    assert report.events[0]["traits"] == {"phone": "+33612345678"}


def test_only_the_first_hundred_rejections_are_listed_but_all_are_counted() -> None:
    text = "email\n" + "not-an-email\n" * 250 + "ok@example.com\n"
    report = csv_report(text)
    assert len(report.rejected) == 100 and report.rejected_total == 250
    assert report.summary() == {
        "accepted": 1,
        "rejected": report.rejected,
        "rejected_total": 250,
        "people": 1,
        "events": 2,
    }


def test_a_valid_timezone_trait_also_sets_the_profile_zone() -> None:
    report = csv_report("email,timezone,locale\na@example.com,Europe/Paris,fr_FR\nb@example.com,Mars/Olympus,x\n")
    first, second = report.events[0], report.events[2]
    assert first["context"]["timezone"] == "Europe/Paris" and first["context"]["locale"] == "fr-FR"
    assert "timezone" not in second["context"] and second["traits"]["timezone"] == "Mars/Olympus"
    assert applied(report.events[:2]).timezone == "Europe/Paris"


# ------------------------------------------------------------------------------------- Pinpoint
def pinpoint() -> ImportReport:
    return parse_pinpoint_endpoints(fixture("pinpoint-export.jsonl"), **JOB)


def test_pinpoint_endpoints_are_grouped_into_people_by_user_id() -> None:
    report = pinpoint()
    people = by_person(report)
    assert sorted(people) == ["a:pinpoint:ep-anon-gcm", "u:user-ann", "u:user-cy", "u:user-eve"]
    assert report.accepted == 6 and report.people == 4
    # An identify per endpoint (email, SMS, push), dated by its EffectiveDate, oldest first
    ann = kinds(people["u:user-ann"])
    assert ann == ["identify"] * 3 + [DEVICE_REGISTERED, "Consent Updated", "Segment Added"]


def test_pinpoint_addresses_attributes_and_demographics_become_traits() -> None:
    ann = applied(by_person(pinpoint())["u:user-ann"])
    assert ann.traits == {
        "interests": ["shoes", "bags"],  # a list of two stays a list
        "plan": "pro",  # the user's attribute wins over the endpoint's "free"
        "first_name": "Ann",
        "country": "US",
        "region": "WA",
        "city": "Seattle",
        "postal_code": "98101",
        "timezone": "America/New_York",  # from the most recently effective endpoint
        "locale": "en-US",
        "email": "ann.lee@example.com",
        "phone": "+12065550182",
    }
    assert ann.timezone == "America/New_York"


def test_push_endpoints_become_devices_the_profile_keeps_for_delivery() -> None:
    events = by_person(pinpoint())["u:user-ann"]
    (device,) = [event for event in events if event["type"] == "track" and event["event"] == DEVICE_REGISTERED]
    assert device["timestamp"] == "2026-11-20T10:00:00.000Z"  # the endpoint's EffectiveDate
    assert device["properties"] == {"platform": "ios", "source": "pinpoint", "endpoint": "ep-ann-ios"}
    profile = applied(events)
    (kept,) = profile.devices.values()
    assert kept["token"].startswith("7f0c5e3b") and kept["type"] == "ios" and kept["manufacturer"] == "Apple"
    # The platform's own events never make a quiet customer look active
    assert profile.last_seen is None


def test_opt_out_refuses_marketing_on_that_channel_and_inactive_addresses_are_not_used() -> None:
    people = by_person(pinpoint())
    ann = applied(people["u:user-ann"])
    assert ann.consent["push:marketing"]["granted"] is False
    assert ann.consent["push:marketing"]["source"] == "import:imp_42"  # where the refusal came from
    assert "email:marketing" not in ann.consent  # OptOut NONE is not a grant
    cy = people["u:user-cy"]
    assert "email" not in cy[0]["traits"]  # the INACTIVE address is skipped, the person is kept
    assert cy[1]["properties"] == {
        "channel": "email",
        "purpose": "marketing",
        "granted": False,
        "source": "import:imp_42",
    }
    assert cy[1]["timestamp"] == "2026-01-05T00:00:00.000Z"


def test_pinpoint_lines_that_cannot_be_used_are_rejected_with_their_line() -> None:
    report = pinpoint()
    assert [r["line"] for r in report.rejected] == [7, 8, 10, 11]
    reasons = [r["reason"] for r in report.rejected]
    assert reasons[0].startswith("unknown ChannelType 'FAX'")
    assert reasons[1] == "EMAIL address 'not-an-email' is not a valid email address"
    assert reasons[2].startswith("not valid JSON")
    assert reasons[3] == "not a JSON object: each line is one endpoint"
    assert "u:user-dee" not in by_person(report)  # every line of that user was rejected


def test_a_phone_without_its_plus_is_read_as_international_in_pinpoint_exports() -> None:
    eve = by_person(pinpoint())["u:user-eve"][0]
    assert eve["traits"]["phone"] == "+12065550199"


def test_an_sms_number_is_preferred_to_a_newer_voice_number() -> None:
    lines = [
        {"Id": "s", "ChannelType": "SMS", "Address": "+15550100001", "EffectiveDate": "2026-01-01T00:00:00Z"},
        {"Id": "v", "ChannelType": "VOICE", "Address": "+15550100002", "EffectiveDate": "2026-06-01T00:00:00Z"},
    ]
    for line in lines:
        line["User"] = {"UserId": "u1"}
    report = parse_pinpoint_endpoints("\n".join(json.dumps(line) for line in lines), **JOB)
    assert report.events[0]["traits"] == {"phone": "+15550100001"}


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ({"ChannelType": "EMAIL", "Address": "a@example.com"}, "no Id or User.UserId: nothing identifies the person"),
        ({"Id": "e1", "Address": "a@example.com"}, "an Address needs its ChannelType"),
        ({"Id": "e1", "ChannelType": "EMAIL"}, "an ACTIVE EMAIL endpoint has no Address"),
        ({"Id": "e1", "ChannelType": "GCM", "Address": "token with spaces"}, "GCM address is not a push token"),
        ({"Id": "e1", "User": "u1"}, "User is not an object"),
        ({"Id": "e1", "OptOut": "SOME"}, "OptOut 'SOME' is neither ALL nor NONE"),
        ({"Id": "e1", "EndpointStatus": "DELETED"}, "EndpointStatus 'DELETED' is neither ACTIVE nor INACTIVE"),
        ({"Id": "e1", "Attributes": {"note": ["x" * (MAX_CELL_BYTES + 1)]}}, "Attributes.note is over"),
        (
            {"Id": "e1", "Attributes": {f"a{n}": ["x"] for n in range(MAX_COLUMNS + 1)}},
            f"{MAX_COLUMNS + 1} attributes; at most {MAX_COLUMNS}",
        ),
        ({"Id": "e1", "Attributes": {"nested": [{"deep": 1}]}}, "Attributes.nested is not text"),
        ({"User": {"UserId": "null"}}, "User.UserId 'null' is a blocked value"),
    ],
)
def test_malformed_endpoints_are_rejected(endpoint: dict[str, Any], reason: str) -> None:
    text = json.dumps({"Id": "fine", "ChannelType": "CUSTOM", "Address": "x"}) + "\n" + json.dumps(endpoint) + "\n"
    report = parse_pinpoint_endpoints(text, **JOB)
    assert report.accepted == 1
    assert report.rejected[0]["line"] == 2
    assert report.rejected[0]["reason"].startswith(reason)


def test_deeply_nested_json_is_rejected_not_crashed_on() -> None:
    text = '{"Id": "fine"}\n' + "[" * 100_000 + "]" * 100_000 + "\n"
    report = parse_pinpoint_endpoints(text, **JOB)
    assert report.accepted == 1 and report.rejected[0]["line"] == 2


def test_attribute_names_outside_the_trait_alphabet_are_made_safe() -> None:
    line = {"Id": "e1", "Attributes": {"Favourite colour": ["red"], "": ["dropped"], ".dot": ["x"]}}
    report = parse_pinpoint_endpoints(json.dumps(line), **JOB)
    assert report.events[0]["traits"] == {"Favourite_colour": "red", "_dot": "x"}


def test_a_future_or_unreadable_effective_date_counts_as_the_import_time() -> None:
    lines = [
        {"Id": "e1", "ChannelType": "GCM", "Address": "t1", "EffectiveDate": "2099-01-01T00:00:00Z"},
        {"Id": "e2", "ChannelType": "GCM", "Address": "t2", "EffectiveDate": "yesterday"},
    ]
    report = parse_pinpoint_endpoints("\n".join(json.dumps(line) for line in lines), **JOB)
    assert {e["timestamp"] for e in report.events if e["type"] == "track"} == {STAMP}


def test_pinpoint_csv_rows_map_like_the_json_endpoints() -> None:
    report = parse_pinpoint_csv(fixture("pinpoint-segment.csv"), **JOB)
    people = by_person(report)
    assert sorted(people) == ["u:example-user-id-1", "u:example-user-id-2"]
    assert people["u:example-user-id-1"][0]["traits"] == {"plan": "pro", "country": "CN", "phone": "+12065550182"}
    two = people["u:example-user-id-2"]
    assert kinds(two) == ["identify", "identify", DEVICE_REGISTERED, "Consent Updated", "Segment Added"]
    assert applied(two).traits["email"] == "john.stiles@example.com"
    assert applied(two).traits["interests"] == "music"
    assert report.rejected == [{"line": 5, "reason": "EMAIL address 'wrong address' is not a valid email address"}]


def test_the_csv_and_json_forms_of_the_same_endpoints_give_the_same_events() -> None:
    endpoints = [
        {
            "Id": "ep-1",
            "ChannelType": "EMAIL",
            "Address": "Zoe@Example.com",
            "OptOut": "ALL",
            "EffectiveDate": "2026-11-01T00:00:00Z",
            "User": {"UserId": "zoe", "UserAttributes": {"plan": ["pro"]}},
            "Attributes": {"source": ["ads"]},
            "Demographic": {"Timezone": "Asia/Tokyo", "Locale": "ja_JP", "Make": "Sony"},
            "Location": {"Country": "JP", "City": "Tokyo"},
        },
        {
            "Id": "ep-2",
            "ChannelType": "ADM",
            "Address": "amzn1.adm-registration.v3.token",
            "User": {"UserId": "zoe"},
            "Demographic": {"Make": "Amazon", "Model": "Fire"},
        },
    ]
    header = (
        "Id,ChannelType,Address,OptOut,EffectiveDate,User.UserId,User.UserAttributes.plan,Attributes.source,"
        "Demographic.Timezone,Demographic.Locale,Demographic.Make,Demographic.Model,Location.Country,Location.City"
    )
    rows = [
        "ep-1,EMAIL,Zoe@Example.com,ALL,2026-11-01T00:00:00Z,zoe,pro,ads,Asia/Tokyo,ja_JP,Sony,,JP,Tokyo",
        "ep-2,ADM,amzn1.adm-registration.v3.token,,,zoe,,,,,Amazon,Fire,,",
    ]
    # Line numbers align: the JSON file starts with a blank line where the CSV has its header
    from_json = parse_pinpoint_endpoints("\n" + "\n".join(json.dumps(e) for e in endpoints), **JOB)
    from_csv = parse_pinpoint_csv("\n".join([header, *rows]), **JOB)

    assert from_csv.events == from_json.events
    assert kinds(from_json.events) == ["identify", DEVICE_REGISTERED, "Consent Updated", "Segment Added"]
    assert from_json.events[1]["context"]["device"] == {
        "token": "amzn1.adm-registration.v3.token",
        "type": "adm",
        "manufacturer": "Amazon",
        "model": "Fire",
    }


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("ChannelType,Address,Colour", "column 3 ('Colour') is not a Pinpoint endpoint field"),
        ("ChannelType,Demographic.Make", "needs Address, Id or User.UserId"),
        ("Id,Location.City,Location.City", "appears twice"),  # attributes may repeat, other columns not
    ],
)
def test_pinpoint_csv_headers_are_checked(header: str, message: str) -> None:
    with pytest.raises(ImportRefused, match=re.escape(message)):
        parse_pinpoint_csv(header + "\n", **JOB)


def test_an_empty_or_binary_pinpoint_export_is_refused() -> None:
    with pytest.raises(ImportRefused, match="empty"):
        parse_pinpoint_endpoints("\n \n", **JOB)
    with pytest.raises(ImportRefused, match="binary"):
        parse_pinpoint_endpoints(b'{"Id": "x"}\n\x00\x01\x02', **JOB)


# ---------------------------------------------------------------------------------- detection
@pytest.mark.parametrize(
    ("name", "expected"),
    [("people.csv", "csv"), ("pinpoint-export.jsonl", "pinpoint-json"), ("pinpoint-segment.csv", "pinpoint-csv")],
)
def test_the_format_is_detected_from_the_first_record(name: str, expected: str) -> None:
    data = fixture(name)
    assert detect_format(data) == expected
    assert detect_format(data.decode("utf-8")) == expected
    assert parse_import(data, **JOB).events == parse_import(data, fmt=expected, **JOB).events  # type: ignore[arg-type]


def test_a_user_attribute_only_pinpoint_csv_is_detected() -> None:
    assert detect_format("User.UserId,User.UserAttributes.plan\nu1,pro\n") == "pinpoint-csv"
    assert detect_format('\n\n  {"Id": "x"}\n') == "pinpoint-json"


@pytest.mark.parametrize(
    "job",
    [
        {"segment_id": "Not An Id", "import_id": "i", "now": NOW},
        {"segment_id": "ok", "import_id": "", "now": NOW},
        {"segment_id": "ok", "import_id": "i", "now": datetime(2026, 11, 22)},  # naive on purpose
    ],
)
def test_the_common_arguments_are_checked(job: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"segment id|import_id|timezone-aware"):
        parse_csv("email\na@example.com\n", **job)
