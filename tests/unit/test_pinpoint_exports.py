"""Amazon Pinpoint exports as AWS documents them, imported into a static segment.

The files are built in the shapes AWS's own documentation shows: the developer guide's
endpoint import example (a bare SMS number with `Location.Country` `CAN`, alpha-3 countries),
its GetEndpoint answer (an APNS endpoint, opted out, with multi-value attributes), the user
guide's segment CSV with a repeated multi-value column and its user-ID files, and an export
job's output (JSON lines, the last line of each file without its newline).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from midstage.logic import profile as profile_logic
from midstage.logic.imports import (
    DEVICE_REGISTERED,
    ImportRefused,
    ImportReport,
    detect_format,
    parse_import,
    parse_pinpoint_csv,
    parse_pinpoint_endpoints,
)
from midstage.logic.imports.phones import international_phone, region_of
from midstage.logic.internal_events import person_key
from midstage.models.profile import Profile

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
JOB: dict[str, Any] = {"segment_id": "from_pinpoint", "import_id": "imp_1", "now": NOW}

# The developer guide's import example: a national number in Canada, alpha-3 countries.
DEVELOPER_GUIDE_CSV = """ChannelType,Address,Location.Country,Demographic.Platform,Demographic.Make,User.UserId
SMS,2065550182,CAN,Android,LG,example-user-id-1
APNS,1a2b3c4d5e6f7g8h9i0j1a2b3c4d5e6f,USA,iOS,Apple,example-user-id-2
EMAIL,john.stiles@example.com,USA,iOS,Apple,example-user-id-2
"""
DEVELOPER_GUIDE_JSON = [
    {
        "ChannelType": "SMS",
        "Address": "2065550182",
        "Location": {"Country": "CAN"},
        "Demographic": {"Platform": "Android", "Make": "LG"},
        "User": {"UserId": "example-user-id-1"},
    },
    {
        "ChannelType": "APNS",
        "Address": "1a2b3c4d5e6f7g8h9i0j1a2b3c4d5e6f",
        "Location": {"Country": "USA"},
        "Demographic": {"Platform": "iOS", "Make": "Apple"},
        "User": {"UserId": "example-user-id-2"},
    },
    {
        "ChannelType": "EMAIL",
        "Address": "john.stiles@example.com",
        "Location": {"Country": "USA"},
        "Demographic": {"Platform": "iOS", "Make": "Apple"},
        "User": {"UserId": "example-user-id-2"},
    },
]
# The shape of the developer guide's GetEndpoint answer (EndpointResponse).
GET_ENDPOINT = {
    "Address": "1a2b3c4d5e6f7g8h9i0j1k2l3m4n5o6p7q8r9s0t1u2v3w4x5y6z7a8b9c0d1e2f",
    "ApplicationId": "application-id",
    "Attributes": {"interests": ["technology", "music", "travel"]},
    "ChannelType": "APNS",
    "CohortId": "63",
    "CreationDate": "2018-05-01T17:31:01.046Z",
    "Demographic": {
        "AppVersion": "1.0",
        "Make": "apple",
        "Model": "iPhone",
        "ModelVersion": "8",
        "Platform": "ios",
        "PlatformVersion": "11.3.1",
        "Timezone": "America/Los_Angeles",
    },
    "EffectiveDate": "2018-05-07T19:03:29.963Z",
    "EndpointStatus": "ACTIVE",
    "Id": "example_endpoint",
    "Location": {"City": "Seattle", "Country": "US", "Latitude": 47.6, "Longitude": -122.3, "PostalCode": "98121"},
    "Metrics": {"music_interest_level": 6.0, "travel_interest_level": 4.0},
    "OptOut": "ALL",
    "RequestId": "7f546cac-6858-11e8-adcd-2b5a07aab338",
    "User": {
        "UserAttributes": {"gender": ["female"], "name": ["Wang", "Xiulan"], "age": ["39"]},
        "UserId": "example_user",
    },
}


def jsonl(endpoints: Iterable[dict[str, Any]], *, trailing_newline: bool = True) -> str:
    text = "\n".join(json.dumps(e, separators=(",", ":")) for e in endpoints)
    return text + "\n" if trailing_newline else text


def by_person(report: ImportReport) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in report.events:
        grouped.setdefault(person_key(event), []).append(event)
    return grouped


def names(events: Iterable[dict[str, Any]]) -> list[str]:
    return [event["type"] if event["type"] == "identify" else event["event"] for event in events]


def export(count: int, *, changed: int | None = None) -> list[dict[str, Any]]:
    """An export job's endpoints: a user's email, SMS and push endpoints, and anonymous devices."""
    endpoints: list[dict[str, Any]] = []
    for n in range(count):
        effective = "2026-09-01T10:00:00.000Z" if n != changed else "2026-11-20T08:00:00.000Z"
        plan = "pro" if n != changed else "team"
        user = {"UserId": f"user-{n}", "UserAttributes": {"plan": [plan], "interests": ["music", "travel"]}}
        endpoints += [
            {"Id": f"em-{n}", "ChannelType": "EMAIL", "Address": f"person{n}@example.com", "User": user}
            | {"EffectiveDate": effective, "OptOut": "ALL" if n % 3 == 0 else "NONE"},
            {"Id": f"sms-{n}", "ChannelType": "SMS", "Address": f"20655501{n % 100:02d}", "User": user}
            | {"EffectiveDate": effective, "Location": {"Country": "CAN"}},
            {"Id": f"apns-{n}", "ChannelType": "APNS", "Address": f"{n:064x}", "User": user}
            | {"EffectiveDate": effective, "Demographic": {"Make": "Apple", "Timezone": "America/Toronto"}},
            {
                "Id": f"anon-{n}",
                "ChannelType": "GCM",
                "Address": f"fcm-token-{n}",
                "EffectiveDate": "2026-08-01T00:00:00Z",
            },
        ]
    return endpoints


# ------------------------------------------------------------------------- E.164 and country
@pytest.mark.parametrize("text", [DEVELOPER_GUIDE_CSV, jsonl(DEVELOPER_GUIDE_JSON)])
def test_the_developer_guides_canadian_number_is_read_in_its_country(text: str) -> None:
    report = parse_import(text, **JOB)
    people = by_person(report)
    assert report.rejected == [] and report.people == 2
    assert people["u:example-user-id-1"][0]["traits"]["phone"] == "+12065550182"  # not +2065550182
    assert people["u:example-user-id-1"][0]["traits"]["country"] == "CAN"
    two = people["u:example-user-id-2"]
    assert names(two) == ["identify", "identify", DEVICE_REGISTERED, "Segment Added"]  # an identify per endpoint
    assert two[1]["traits"]["email"] == "john.stiles@example.com"


@pytest.mark.parametrize(
    ("address", "country", "expected"),
    [
        ("2065550182", "CAN", "+12065550182"),  # alpha-3
        ("2065550182", "CA", "+12065550182"),  # alpha-2
        ("2065550182", "can", "+12065550182"),
        ("07911 123456", "GB", "+447911123456"),  # the trunk prefix goes
        ("07911123456", "GBR", "+447911123456"),
        ("06 12 34 56 78", "FRA", "+33612345678"),
        ("12065550182", "CN", "+12065550182"),  # no Chinese number starts 120: international without +
        ("12065550182", "USA", "+12065550182"),
        ("+1 (206) 555-0182", "DEU", "+12065550182"),  # an explicit country code wins
        ("0044 7911 123456", "US", "+447911123456"),
        ("12065550199", None, "+12065550199"),  # no country: international, as before
        ("12065550199", "ZZZ", "+12065550199"),  # an unknown country is no country
        ("0612345678", None, None),  # national, and nothing says where
        ("phone", "US", None),
        ("\uff12\uff10\uff16\uff15\uff15\uff15\uff10\uff11\uff18\uff12", "US", None),  # fullwidth digits are no number
    ],
)
def test_a_bare_number_is_read_in_the_endpoints_country(
    address: str, country: str | None, expected: str | None
) -> None:
    assert international_phone(address, country) == expected


def test_countries_are_known_by_alpha_2_and_alpha_3() -> None:
    assert [region_of(c) for c in ("CAN", "USA", "GBR", "CHN", "DEU", "us", " fr ")] == [
        "CA",
        "US",
        "GB",
        "CN",
        "DE",
        "US",
        "FR",
    ]
    assert [region_of(c) for c in (None, "", "XX", "Canada", "ZZZ")] == [None] * 5


def test_a_national_number_without_a_country_rejects_its_endpoint_alone() -> None:
    endpoints = [
        {"Id": "a", "ChannelType": "SMS", "Address": "06 12 34 56 78", "User": {"UserId": "u1"}},
        {"Id": "b", "ChannelType": "SMS", "Address": "06 12 34 56 78", "Location": {"Country": "FR"}},
    ]
    report = parse_pinpoint_endpoints(jsonl(endpoints), **JOB)
    assert report.rejected == [
        {"line": 1, "reason": "SMS address '06 12 34 56 78' is not an international phone number (E.164)"}
    ]
    assert report.events[0]["traits"]["phone"] == "+33612345678"


# ------------------------------------------------------------------------------- CSV forms
def test_the_user_guides_repeated_column_is_a_multi_value_attribute() -> None:
    text = (
        "ChannelType,Address,User.UserId, User.UserAttributes.new_multi_field,User.UserAttributes.new_multi_field,"
        "Attributes.interests,Attributes.interests,Attributes.interests\n"
        "EMAIL,john.stiles@example.com,example-user-id-2,test10,test20,music,,travel\n"
        "EMAIL,wang.xiulan@example.com,example-user-id-3,test30,,,,\n"
    )
    assert detect_format(text) == "pinpoint-csv"
    report = parse_pinpoint_csv(text, **JOB)
    people = by_person(report)
    assert report.rejected == []
    assert people["u:example-user-id-2"][0]["traits"] == {
        "new_multi_field": ["test10", "test20"],
        "interests": ["music", "travel"],  # an empty cell is no value
        "email": "john.stiles@example.com",
    }
    assert people["u:example-user-id-3"][0]["traits"]["new_multi_field"] == "test30"  # one value, unwrapped


def test_a_repeated_column_that_is_not_an_attribute_still_refuses_the_file() -> None:
    with pytest.raises(ImportRefused, match=r"'Location\.City' appears twice"):
        parse_pinpoint_csv("Id,Location.City,Location.City\ne1,Paris,Lyon\n", **JOB)


def test_the_user_guides_user_id_file_is_one_person_per_id() -> None:
    text = "User.UserId\nexample-user-id-1 example-user-id-2 example-user-id-3\nexample-user-id-4\n"
    assert detect_format(text) == "pinpoint-csv"
    report = parse_import(text, **JOB)
    people = by_person(report)
    assert sorted(people) == [f"u:example-user-id-{n}" for n in range(1, 5)]
    assert (report.accepted, report.people, report.rejected) == (4, 4, [])
    # Nothing is known of them but their id: each gets only the segment's event.
    assert all(names(events) == ["Segment Added"] for events in people.values())
    assert people["u:example-user-id-2"][0]["properties"] == {"segment": "from_pinpoint"}


def test_the_user_id_file_in_json_lines_is_the_same_people() -> None:
    text = jsonl({"User": {"UserId": f"example-user-id-{n}"}} for n in range(1, 4))
    from_json = parse_import(text, **JOB)
    from_csv = parse_import("User.UserId\nexample-user-id-1 example-user-id-2 example-user-id-3\n", **JOB)
    assert sorted(by_person(from_json)) == sorted(by_person(from_csv))
    assert {e["messageId"] for e in from_json.events} == {e["messageId"] for e in from_csv.events}


def test_a_blocked_id_in_a_user_id_file_rejects_only_itself() -> None:
    report = parse_pinpoint_csv("User.UserId\nexample-user-id-1 null example-user-id-3\n", **JOB)
    assert report.people == 2
    assert report.rejected == [
        {"line": 2, "reason": "User.UserId 'null' is a blocked value (placeholders are never identifiers)"}
    ]


# ----------------------------------------------------------------------- the GetEndpoint shape
def test_the_get_endpoint_answer_imports_as_a_person_with_a_device_and_a_refusal() -> None:
    report = parse_pinpoint_endpoints(jsonl([GET_ENDPOINT]), **JOB)
    (events,) = by_person(report).values()
    assert names(events) == ["identify", DEVICE_REGISTERED, "Consent Updated", "Segment Added"]
    identify, device, consent, _ = events
    assert identify["userId"] == "example_user"
    assert identify["traits"] == {
        "interests": ["technology", "music", "travel"],
        "gender": "female",
        "name": ["Wang", "Xiulan"],
        "age": "39",
        "country": "US",
        "city": "Seattle",
        "postal_code": "98121",
        "timezone": "America/Los_Angeles",
    }
    assert identify["timestamp"] == "2018-05-07T19:03:29.963Z"  # dated by EffectiveDate, not by the import
    assert device["context"]["device"] == {
        "token": GET_ENDPOINT["Address"],
        "type": "ios",
        "manufacturer": "apple",
        "model": "iPhone",
    }
    assert device["properties"]["endpoint"] == "example_endpoint"
    assert (consent["properties"]["channel"], consent["timestamp"]) == ("push", "2018-05-07T19:03:29.963Z")


# ------------------------------------------------------------------------------ idempotency
def message_ids(report: ImportReport) -> set[str]:
    return {event["messageId"] for event in report.events}


def test_a_second_export_job_of_the_same_endpoints_makes_the_same_events() -> None:
    endpoints = export(12)
    first = parse_pinpoint_endpoints(jsonl(endpoints), **JOB)
    # A new export job: three files cut elsewhere, another order, other imports, another day.
    shuffled = endpoints[:]
    random.Random(7).shuffle(shuffled)
    files = [shuffled[:10], shuffled[10:31], shuffled[31:]]
    second = [
        parse_pinpoint_endpoints(
            jsonl(part, trailing_newline=False),
            segment_id="from_pinpoint",
            import_id=f"imp_job2_{n}",
            now=datetime(2026, 12, 5, tzinfo=UTC),
        )
        for n, part in enumerate(files)
    ]
    assert len(message_ids(first)) == len(first.events)
    assert set().union(*(message_ids(report) for report in second)) == message_ids(first)


def test_a_later_export_adds_only_what_changed() -> None:
    before = parse_pinpoint_endpoints(jsonl(export(6)), **JOB)
    after = parse_pinpoint_endpoints(jsonl(export(6, changed=4)), **{**JOB, "import_id": "imp_2"})
    new = [e for e in after.events if e["messageId"] not in message_ids(before)]
    assert {person_key(e) for e in new} == {"u:user-4"}
    # Each of the user's endpoints says the new plan at its new EffectiveDate, the device too
    assert names(new) == ["identify"] * 3 + [DEVICE_REGISTERED]
    assert {e["traits"]["plan"] for e in new[:3]} == {"team"}
    assert {e["timestamp"] for e in new} == {"2026-11-20T08:00:00.000Z"}


def test_the_same_people_in_another_segment_get_only_that_segments_event() -> None:
    endpoints = jsonl(export(3))
    first = parse_pinpoint_endpoints(endpoints, **JOB)
    other = parse_pinpoint_endpoints(endpoints, segment_id="second", import_id="imp_9", now=NOW)
    new = [e for e in other.events if e["messageId"] not in message_ids(first)]
    assert names(new) == ["Segment Added"] * 6
    assert {e["properties"]["segment"] for e in new} == {"second"}


def test_two_files_without_trailing_newlines_import_completely_each_on_its_own() -> None:
    endpoints = export(3)
    files = [jsonl(endpoints[:5], trailing_newline=False), jsonl(endpoints[5:], trailing_newline=False)]
    reports = [parse_pinpoint_endpoints(text, **JOB) for text in files]
    assert sum(r.accepted for r in reports) == len(endpoints) and all(r.rejected == [] for r in reports)
    # Joined as the old guide's script joined them, the two lines at the seam become one bad line.
    joined = parse_pinpoint_endpoints(files[0] + files[1], **JOB)
    assert joined.accepted == len(endpoints) - 2 and joined.rejected[0]["line"] == 5


def test_a_later_exports_newer_address_wins_on_the_profile() -> None:
    old = {"Id": "em-1", "ChannelType": "EMAIL", "Address": "wang.xiulan@example.com", "User": {"UserId": "u3"}}
    new = {**old, "Address": "xiulan@example.com"}
    first = parse_pinpoint_endpoints(jsonl([old | {"EffectiveDate": "2026-10-01T09:00:00Z"}]), **JOB)
    later = parse_pinpoint_endpoints(
        jsonl([new | {"EffectiveDate": "2026-11-20T09:00:00Z"}]),
        segment_id="from_pinpoint",
        import_id="imp_2",
        now=datetime(2026, 12, 20, tzinfo=UTC),
    )
    profile = Profile(id="p1", created_at="2026-10-01T00:00:00.000Z")
    for event in [*first.events, *later.events]:  # the first import's Segment Added is dated later
        profile_logic.apply_event(profile, event)
    assert profile.traits["email"] == "xiulan@example.com"


def test_a_user_id_file_holds_its_ids_on_one_line_however_many_up_to_the_limit() -> None:
    report = parse_pinpoint_csv("User.UserId\n" + " ".join(f"user-{n}" for n in range(5_000)) + "\n", **JOB)
    assert (report.people, report.rejected) == (5_000, [])
    with pytest.raises(ImportRefused, match="more than 100,000 user ids"):
        parse_pinpoint_csv("User.UserId\n" + " ".join(f"u{n}" for n in range(100_001)) + "\n", **JOB)


@pytest.mark.parametrize("seed", range(5))
def test_hostile_user_id_and_multi_value_files_answer_a_report_or_a_refusal(seed: int) -> None:
    """Whatever the rows hold, the parser answers a report or refuses the file: never a crash."""
    chaos = random.Random(seed)
    alphabet = ['"', ",", " ", "\r", "\n", "\t", "null", "é", "\x01", "+1 206", "0", "a" * 600, "User.UserId"]
    headers = [
        "User.UserId",
        "User.UserId,Metrics.m",
        "Id,Attributes.x,Attributes.x,ChannelType,Address,Location.Country",
    ]
    for _ in range(40):
        body = "".join(chaos.choice(alphabet) for _ in range(chaos.randint(0, 60)))
        text = chaos.choice(headers) + "\n" + body
        try:
            report = parse_import(text, **JOB)
        except ImportRefused:
            continue
        assert report.people <= report.accepted  # endpoints (or ids) make people, never the reverse
        lines = text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1  # \r ends a line too
        assert all(2 <= r["line"] <= lines for r in report.rejected)


def test_a_segment_file_without_effective_dates_imported_again_another_day_makes_the_same_events() -> None:
    # The user guide's files carry neither Id nor EffectiveDate: their events are dated by the
    # import, and named without it.
    first = parse_import(DEVELOPER_GUIDE_CSV, **JOB)
    later = parse_import(
        DEVELOPER_GUIDE_CSV, segment_id="from_pinpoint", import_id="imp_2", now=datetime(2027, 2, 1, tzinfo=UTC)
    )
    assert message_ids(later) == message_ids(first)
    assert {e["timestamp"] for e in later.events} == {"2027-02-01T00:00:00.000Z"}
