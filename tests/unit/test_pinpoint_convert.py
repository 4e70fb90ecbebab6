"""Amazon Pinpoint definitions (segments, templates, campaigns, journeys), as the AWS CLI prints
them, converted to Midstage definitions.

Inputs are built from AWS's documentation only (tests/fixtures/pinpoint/README.md says which
page each comes from): the AWS CLI's own get-campaigns and get-sms-template examples, and the
API reference's shapes for the rest. botocore's service model for pinpoint is the oracle for
every field name the fixtures use. Each converted definition is then checked as the admin API
checks it on save, and what cannot be converted must be reported, never dropped.
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore
import pytest
import yaml

from midstage import cli
from midstage.definitions import load_documents
from midstage.logic import templates
from midstage.logic.campaigns import validate_campaign
from midstage.logic.conditions import Facts, compile_condition, validate
from midstage.logic.pinpoint import Item, convert_project, items_of
from midstage.logic.pinpoint.common import Note, iso_minutes, slug
from midstage.logic.pinpoint.dimensions import event_dimensions, person_dimensions
from midstage.models.messaging import TemplateBody
from midstage.models.profile import Profile
from midstage.models.requests import CampaignCreate
from midstage.pinpoint_convert_command import check, convert_files, document_text, input_files

FIXTURES = Path(__file__).parents[1] / "fixtures" / "pinpoint"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SEGMENT_ID = "b66c9e42f71444b2aa2e0ffc1df28f60"


# ------------------------------------------------------------------------------ helpers
def profile(**fields: Any) -> Profile:
    return Profile(id="p1", created_at="2025-01-01T00:00:00.000Z", **fields)


def matches(condition: dict[str, Any], person: Profile) -> bool:
    assert validate(condition) == []
    return compile_condition(condition).test(Facts(profile=person, event=None, now=NOW))


def conditions_of(dimensions: Mapping[str, Any]) -> tuple[dict[str, Any], list[Note]]:
    notes: list[Note] = []
    found = person_dimensions(dimensions, "/Dimensions", notes)
    return ({"all": found} if len(found) > 1 else found[0]) if found else {}, notes


def segment(dimensions: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    item = {"Id": SEGMENT_ID, "Name": "Test segment", "SegmentType": "DIMENSIONAL", **fields}
    if dimensions is not None:
        item["Dimensions"] = dimensions
    return item


def convert(*items: Item) -> Any:
    return convert_project(list(items), NOW)


def one(kind: str, result: Any) -> Any:
    found = [c for c in result.converted if c.kind == kind]
    assert len(found) == 1, (result.converted, result.refused)
    return found[0]


def campaign(**fields: Any) -> dict[str, Any]:
    return {
        "Id": "c1",
        "Name": "Campaign",
        "SegmentId": SEGMENT_ID,
        "SegmentVersion": 1,
        "TemplateConfiguration": {"EmailTemplate": {"Name": "WelcomeEmail"}},
        "Schedule": {"StartTime": "2027-01-04T09:30:00Z", "Frequency": "ONCE", "Timezone": "UTC"},
        **fields,
    }


def journey(activities: dict[str, Any], start: str, **fields: Any) -> dict[str, Any]:
    return {
        "Id": "j1",
        "Name": "Journey",
        "Activities": activities,
        "StartActivity": start,
        "StartCondition": {"SegmentStartCondition": {"SegmentId": SEGMENT_ID}},
        **fields,
    }


# ------------------------------------------------------------------------------ the fixtures
def _shapes() -> dict[str, Any]:
    path = Path(botocore.__file__).parent / "data" / "pinpoint" / "2016-12-01" / "service-2.json.gz"
    shapes: dict[str, Any] = json.loads(gzip.decompress(path.read_bytes()))["shapes"]
    return shapes


def _unknown_fields(value: Any, shape_name: str, shapes: dict[str, Any], where: str) -> list[str]:
    shape = shapes[shape_name]
    problems: list[str] = []
    if shape["type"] == "structure":
        for key, member in value.items():
            if key not in shape["members"]:
                problems.append(f"{where}/{key}")
            else:
                problems += _unknown_fields(member, shape["members"][key]["shape"], shapes, f"{where}/{key}")
    elif shape["type"] == "list":
        for i, member in enumerate(value):
            problems += _unknown_fields(member, shape["member"]["shape"], shapes, f"{where}/{i}")
    elif shape["type"] == "map":
        for key, member in value.items():
            problems += _unknown_fields(member, shape["value"]["shape"], shapes, f"{where}/{key}")
    elif "enum" in shape and value not in shape["enum"]:
        problems.append(f"{where}: {value!r} is not one of {shape['enum']}")
    return problems


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
def test_fixtures_use_only_the_fields_and_values_of_botocores_pinpoint_model(path: Path) -> None:
    shapes = _shapes()
    ((key, value),) = json.loads(path.read_text()).items()
    assert key in shapes
    assert _unknown_fields(value, key, shapes, key) == []


# ------------------------------------------------------------------------------ dimensions
def test_channel_email_and_sms_are_identifiers_and_push_is_reported() -> None:
    condition, notes = conditions_of({"Demographic": {"Channel": {"Values": ["EMAIL", "SMS", "GCM"]}}})
    assert condition == {
        "any": [
            {"path": "identities.email", "op": "exists", "value": True},
            {"path": "identities.phone", "op": "exists", "value": True},
        ]
    }
    assert [n.path for n in notes] == ["/Dimensions/Demographic/Channel"]
    assert "GCM" in notes[0].message and "matches more people" in notes[0].message
    assert matches(condition, profile(identities={"phone": ["+12065550182"]}))
    assert not matches(condition, profile())


@pytest.mark.parametrize("name", ["Platform", "Make", "Model", "AppVersion", "DeviceType"])
def test_demographics_the_import_does_not_keep_are_reported_and_left_out(name: str) -> None:
    condition, notes = conditions_of({"Demographic": {name: {"DimensionType": "INCLUSIVE", "Values": ["x"]}}})
    assert condition == {}
    assert [n.path for n in notes] == [f"/Dimensions/Demographic/{name}"]


def test_country_inclusive_and_exclusive_read_the_country_trait() -> None:
    inside, _ = conditions_of({"Location": {"Country": {"DimensionType": "INCLUSIVE", "Values": ["US", "CA"]}}})
    outside, _ = conditions_of({"Location": {"Country": {"DimensionType": "EXCLUSIVE", "Values": ["US"]}}})
    canadian = profile(traits={"country": "CA"})
    assert matches(inside, canadian) and matches(outside, canadian)
    # The developer guide's own import example writes countries in alpha-3: CAN is Canada too.
    assert matches(inside, profile(traits={"country": "CAN"})) and not matches(
        outside, profile(traits={"country": "USA"})
    )
    assert not matches(outside, profile(traits={"country": "US"}))


def test_a_gps_radius_is_reported_as_unsupported() -> None:
    point = {"Coordinates": {"Latitude": 47.6, "Longitude": -122.3}, "RangeInKilometers": 10}
    condition, notes = conditions_of({"Location": {"GPSPoint": point}})
    assert condition == {} and [n.path for n in notes] == ["/Dimensions/Location/GPSPoint"]


@pytest.mark.parametrize(
    ("duration", "kind", "op", "window"),
    [("HR_24", "ACTIVE", "within_last", "24h"), ("DAY_7", "INACTIVE", "not_within_last", "7d")],
)
def test_recency_reads_the_last_event_and_says_so(duration: str, kind: str, op: str, window: str) -> None:
    condition, notes = conditions_of({"Behavior": {"Recency": {"Duration": duration, "RecencyType": kind}}})
    assert condition == {"path": "profile.last_seen", "op": op, "value": window}
    assert [n.path for n in notes] == ["/Dimensions/Behavior/Recency"]


def test_an_inclusive_attribute_matches_a_plain_trait_or_a_list_trait_but_not_a_substring() -> None:
    condition, notes = conditions_of(
        {"UserAttributes": {"Interests": {"AttributeType": "INCLUSIVE", "Values": ["Music"]}}}
    )
    assert notes == []
    assert matches(condition, profile(traits={"Interests": "Music"}))
    assert matches(condition, profile(traits={"Interests": ["Travel", "Music"]}))
    assert not matches(condition, profile(traits={"Interests": "Musicals"}))
    assert not matches(condition, profile())


def test_an_exclusive_attribute_is_the_negation() -> None:
    condition, _ = conditions_of({"Attributes": {"plan": {"AttributeType": "EXCLUSIVE", "Values": ["free"]}}})
    assert not matches(condition, profile(traits={"plan": "free"}))
    assert matches(condition, profile(traits={"plan": "pro"}))


def test_contains_is_a_substring_of_the_trait() -> None:
    condition, _ = conditions_of({"UserAttributes": {"FirstName": {"AttributeType": "CONTAINS", "Values": ["Ann"]}}})
    assert matches(condition, profile(traits={"FirstName": "Annette"}))
    assert not matches(condition, profile(traits={"FirstName": "Bob"}))


@pytest.mark.parametrize(
    ("kind", "values", "inside", "outside"),
    [
        ("BEFORE", ["2024-01-01T00:00:00Z"], "2023-06-01T00:00:00Z", "2024-06-01T00:00:00Z"),
        ("AFTER", ["2024-01-01"], "2024-06-01T00:00:00Z", "2023-06-01T00:00:00Z"),
        ("BETWEEN", ["2024-01-01", "2024-12-31"], "2024-06-01T00:00:00Z", "2025-02-01T00:00:00Z"),
        ("ON", ["2024-03-05"], "2024-03-05T18:00:00Z", "2024-03-06T00:00:00Z"),
    ],
)
def test_date_attributes_compare_instants(kind: str, values: list[str], inside: str, outside: str) -> None:
    condition, notes = conditions_of({"Attributes": {"SignupDate": {"AttributeType": kind, "Values": values}}})
    assert notes == []
    assert matches(condition, profile(traits={"SignupDate": inside}))
    assert not matches(condition, profile(traits={"SignupDate": outside}))


def test_an_attribute_name_with_a_dot_reads_the_trait_of_that_name() -> None:
    condition, _ = conditions_of({"Attributes": {"app.tier": {"AttributeType": "INCLUSIVE", "Values": ["gold"]}}})
    assert matches(condition, profile(traits={"app.tier": "gold"}))


def test_endpoint_metrics_are_reported_and_left_out() -> None:
    condition, notes = conditions_of({"Metrics": {"purchases": {"ComparisonOperator": "GREATER_THAN", "Value": 2.0}}})
    assert condition == {} and [n.path for n in notes] == ["/Dimensions/Metrics/purchases"]


def test_event_dimensions_read_the_events_name_and_properties() -> None:
    notes: list[Note] = []
    names, found = event_dimensions(
        {
            "EventType": {"DimensionType": "INCLUSIVE", "Values": ["Order Completed"]},
            "Attributes": {"store": {"AttributeType": "INCLUSIVE", "Values": ["online"]}},
            "Metrics": {"total": {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 50.0}},
        },
        "/EventFilter/Dimensions",
        notes,
    )
    assert names == ["Order Completed"] and notes == []
    event = {"type": "track", "event": "Order Completed", "properties": {"store": "online", "total": 75}}
    for condition in found:
        assert compile_condition(condition).test(Facts(profile=None, event=event, now=NOW))


# ------------------------------------------------------------------------------ segments
def test_segment_groups_combine_sources_and_filters_as_pinpoint_does() -> None:
    groups = {
        "Include": "ALL",
        "Groups": [
            {
                "SourceSegments": [{"Id": "aaa"}, {"Id": "bbb"}],
                "SourceType": "ANY",
                "Type": "NONE",
                "Dimensions": [{"Attributes": {"plan": {"AttributeType": "INCLUSIVE", "Values": ["free"]}}}],
            }
        ],
    }
    base = [
        Item("segment", "f", {"Id": "aaa", "Name": "A", "SegmentType": "IMPORT"}),
        Item("segment", "f", {"Id": "bbb", "Name": "B", "SegmentType": "IMPORT"}),
    ]
    result = convert(*base, Item("segment", "f", segment(SegmentGroups=groups)))
    condition = next(c for c in result.converted if c.id == "test-segment").body["condition"]
    in_b = profile(segments={"b": "2024-01-01T00:00:00Z"}, traits={"plan": "pro"})
    assert matches(condition, in_b)
    assert not matches(condition, profile(segments={"b": "2024-01-01T00:00:00Z"}, traits={"plan": "free"}))
    assert not matches(condition, profile(traits={"plan": "pro"}))


def test_an_imported_segment_becomes_a_static_segment_with_the_import_to_run() -> None:
    result = convert(Item("segment", "f", {"Id": "x1", "Name": "Imported", "SegmentType": "IMPORT"}))
    converted = one("segment", result)
    assert converted.body["kind"] == "static" and "condition" not in converted.body
    assert "pinpoint-import imported" in converted.notes[0].message


def test_a_segment_with_no_translatable_filter_is_not_converted() -> None:
    result = convert(Item("segment", "f", segment({"Demographic": {"Platform": {"Values": ["iOS"]}}})))
    assert result.converted == []
    assert [n.path for n in result.refused[0].notes] == ["/Dimensions/Demographic/Platform", "/Dimensions"]


def test_a_segment_naming_one_not_among_the_inputs_says_so() -> None:
    groups = {"Groups": [{"SourceSegments": [{"Id": "feedbeef"}]}]}
    converted = one("segment", convert(Item("segment", "f", segment(SegmentGroups=groups))))
    assert converted.body["condition"] == {"path": "segments", "op": "contains", "value": "pinpoint-feedbeef"}
    assert "not among the inputs" in converted.notes[0].message


# ------------------------------------------------------------------------------ templates
def render(body: dict[str, Any], person: dict[str, Any]) -> dict[str, str]:
    template = TemplateBody.model_validate({k: v for k, v in body.items() if k != "id"})
    assert templates.check_template(template.channel, template.locales, template.variables, default_locale="en") == []
    return templates.render(
        template.channel,
        template.locales,
        template.variables,
        locale=None,
        default_locale=template.default_locale,
        context=templates.RenderContext(person=person),
        timer=time.monotonic,
    ).fields


def test_an_email_template_renders_as_pinpoint_would_with_its_defaults() -> None:
    ((key, data),) = json.loads((FIXTURES / "get-email-template.json").read_text()).items()
    items, _ = items_of("get-email-template.json", {key: data})
    converted = one("template", convert(*items))
    assert converted.id == "welcome-email" and converted.notes == []
    shown = render(converted.body, {"FirstName": "Ann", "plan": "pro", "email": "ann@example.com", "city": "Lyon"})
    assert shown["subject"] == "Welcome, Ann"
    assert "<p>Your plan: pro</p>" in shown["html"] and "ann@example.com" in shown["html"]
    assert shown["text"] == "Hello Ann, welcome to Lyon."
    # Pinpoint renders a missing value as its default substitution, else as nothing.
    bare = render(converted.body, {})
    assert bare["subject"] == "Welcome, there" and "Pick a plan." in bare["html"]
    assert bare["text"] == "Hello there, welcome to ."


def test_untranslatable_template_parts_are_reported_and_left_as_comments() -> None:
    item = {
        "TemplateName": "Digest",
        "Body": "Top: {{#each Recommendations}}{{this}}{{/each}} {{Demographic.Platform}}",
    }
    converted = one("template", convert(Item("template", "f", item, "sms")))
    assert converted.body["locales"]["en"]["body"].count("{# pinpoint:") == 4
    assert all(n.path == "/Body line 1" for n in converted.notes) and len(converted.notes) == 4
    assert render(converted.body, {}) == {"body": "Top:  "}


def test_a_block_helper_with_no_translation_keeps_its_content_and_pairs_its_tags() -> None:
    item = {
        "TemplateName": "Tiers",
        "Body": "{{#if (eq Attributes.tier 'gold')}}Gold{{else}}{{#if Attributes.tier}}Tier{{/if}}{{/if}}!",
    }
    converted = one("template", convert(Item("template", "f", item, "sms")))
    body = converted.body["locales"]["en"]["body"]
    assert body.count("{# pinpoint:") == 3 and "{% if person.tier %}Tier{% endif %}" in body
    assert render(converted.body, {"tier": "silver"}) == {"body": "GoldTier!"}
    assert len(converted.notes) == 3


def test_a_push_template_keeps_title_and_body_and_reports_the_rest() -> None:
    data = json.loads((FIXTURES / "get-push-template.json").read_text())
    items, _ = items_of("p.json", data)
    converted = one("template", convert(*items))
    assert render(converted.body, {}) == {"title": "Still thinking?", "body": "Hi, your cart is waiting"}
    assert [n.path for n in converted.notes] == ["/Default/Action"]


def test_voice_and_listed_templates_are_reported() -> None:
    _, refused = items_of("v.json", {"VoiceTemplateResponse": {"TemplateName": "Call", "TemplateType": "VOICE"}})
    assert "no voice channel" in refused[0].notes[0].message
    listed = items_of("l.json", json.loads((FIXTURES / "list-templates.json").read_text()))[0]
    result = convert(*listed)
    assert result.converted == [] and len(result.refused) == 3
    assert "get-email-template --template-name WelcomeEmail" in str(result.refused[0].notes[0])


# ------------------------------------------------------------------------------ campaigns
def test_a_one_time_campaign_in_local_time_is_a_local_time_campaign() -> None:
    schedule = {"StartTime": "2027-01-04T16:30:00Z", "IsLocalTime": True, "Timezone": "UTC-07", "Frequency": "ONCE"}
    converted = one("campaign", convert(Item("campaign", "f", campaign(Schedule=schedule))))
    assert converted.body["schedule"] == {"type": "local_time", "date": "2027-01-04", "time": "09:30"}


@pytest.mark.parametrize(
    ("frequency", "expression"),
    [
        ("HOURLY", "cron(30 * * * ? *)"),
        ("DAILY", "cron(30 9 * * ? *)"),
        ("WEEKLY", "cron(30 9 ? * MON *)"),
        ("MONTHLY", "cron(30 9 4 * ? *)"),
    ],
)
def test_recurring_frequencies_are_cron_expressions_from_the_start_time(frequency: str, expression: str) -> None:
    schedule = {"StartTime": "2027-01-04T09:30:00Z", "EndTime": "2027-06-01T00:00:00Z", "Frequency": frequency}
    converted = one("campaign", convert(Item("campaign", "f", campaign(Schedule=schedule))))
    assert converted.body["schedule"] == {
        "type": "recurring",
        "expression": expression,
        "timezone": "UTC",
        "start": "2027-01-04T09:30:00Z",
        "end": "2027-06-01T00:00:00Z",
    }


def test_treatments_become_variants_scaled_to_the_people_messaged() -> None:
    treatments = [{"Id": "1", "SizePercent": 20, "TemplateConfiguration": {"EmailTemplate": {"Name": "Other"}}}]
    item = campaign(HoldoutPercent=20, AdditionalTreatments=treatments, TreatmentName="Control")
    converted = one("campaign", convert(Item("campaign", "f", item)))
    assert converted.body["holdout_percent"] == 20.0
    assert converted.body["variants"] == [
        {"id": "control", "percent": 75.0},
        {"id": "treatment-b", "template": "other-email", "percent": 25.0},
    ]
    assert CampaignCreate.model_validate(converted.body).variants is not None


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"Schedule": {"StartTime": "IMMEDIATE"}}, "/Schedule/StartTime"),
        ({"Schedule": {"StartTime": "2020-01-01T00:00:00Z", "Frequency": "ONCE"}}, "/Schedule/StartTime"),
        ({"HoldoutPercent": 60}, "/HoldoutPercent"),
        ({"TemplateConfiguration": {"VoiceTemplate": {"Name": "Call"}}}, "/MessageConfiguration"),
        ({"Schedule": {"StartTime": "2027-01-01T00:00:00Z", "Frequency": "IN_APP_EVENT"}}, "/Schedule/Frequency"),
    ],
)
def test_campaigns_that_cannot_be_converted_are_reported_with_why(fields: dict[str, Any], path: str) -> None:
    result = convert(Item("campaign", "f", campaign(**fields)))
    assert result.converted == []
    assert result.refused[0].notes[-1].path == path


def test_an_event_campaign_becomes_a_rule_on_that_event() -> None:
    items, _ = items_of("e.json", json.loads((FIXTURES / "get-campaign-event.json").read_text()))
    result = convert(*items)
    rule = one("rule", result)
    assert rule.body["trigger"]["event"] == "Order Completed" and rule.body["enabled"] is False
    assert rule.body["holdout_percent"] == 5.0
    assert one("template", result).body["locales"]["en"]["body"] == "Thanks for your order, {{ person.FirstName }}!"
    assert {n.path for n in rule.notes} >= {
        "/SegmentId",
        "/MessageConfiguration/SMSMessage/OriginationNumber",
        "/MessageConfiguration/SMSMessage/MessageType",
    }


def test_a_campaign_on_an_older_version_of_its_segment_says_so() -> None:
    item = campaign(SegmentVersion=1)
    result = convert(
        Item("segment", "f", segment({"Location": {"Country": {"Values": ["US"]}}}, Version=3)),
        Item("campaign", "f", item),
    )
    assert "/SegmentVersion" in [n.path for n in one("campaign", result).notes]
    same = convert(
        Item("segment", "f", segment({"Location": {"Country": {"Values": ["US"]}}}, Version=1)),
        Item("campaign", "f", item),
    )
    assert "/SegmentVersion" not in [n.path for n in one("campaign", same).notes]


def test_inline_content_beside_a_template_is_reported() -> None:
    item = campaign(MessageConfiguration={"EmailMessage": {"Title": "Hi", "HtmlBody": "<p>Hi</p>"}})
    converted = one("campaign", convert(Item("campaign", "f", item)))
    assert converted.body["message"]["template"] == "welcome-email"
    assert "/MessageConfiguration/EmailMessage" in [n.path for n in converted.notes]


def test_quiet_time_and_limits_are_reported_with_their_stack_wide_counterparts() -> None:
    item = campaign(
        Limits={"Daily": 1, "Total": 3, "MessagesPerSecond": 20},
        Schedule={
            "StartTime": "2027-01-04T09:30:00Z",
            "Frequency": "ONCE",
            "QuietTime": {"Start": "22:00", "End": "07:00"},
        },
    )
    converted = one("campaign", convert(Item("campaign", "f", item)))
    assert converted.body["send_rate"] == 20
    paths = [n.path for n in converted.notes]
    assert "/Limits/Daily" in paths and "/Limits/Total" in paths and "/Schedule/QuietTime" in paths


# ------------------------------------------------------------------------------ journeys
def test_each_activity_type_becomes_its_step() -> None:
    items, _ = items_of("j.json", json.loads((FIXTURES / "list-journeys.json").read_text()))
    result = convert(*items)
    welcome = next(c for c in result.converted if c.id == "welcome-journey").body
    steps = welcome["steps"]
    assert welcome["entry"] == {"type": "segment_entered", "segment": "pinpoint-b66c9e42f71444b2aa2e0ffc1df28f60"}
    assert steps["send-welcome"] == {
        "type": "send",
        "channels": ["email"],
        "template": "welcome-email",
        "next": "wait-for-open",
    }
    assert steps["wait-for-open"] == {
        "type": "wait",
        "until_event": {"event": "Email Opened"},
        "timeout": "2d",
        "on_event": "group",
        "on_timeout": "pause",
    }
    assert steps["pause"] == {"type": "wait", "duration": "12h", "next": "nudge"}
    assert steps["group"]["type"] == "condition" and steps["group"]["no"] == "group-branch-2"
    assert steps["group-branch-2"]["no"] == "call-center"
    assert steps["split"]["type"] == "random" and [b["percent"] for b in steps["split"]["branches"]] == [50.0, 50.0]
    assert steps["holdback"]["branches"] == [{"percent": 10.0, "next": "end"}, {"percent": 90.0, "next": "push"}]
    assert steps["call-center"] == {"type": "wait", "duration": "1m", "next": "end"}
    assert steps["end"] == {"type": "exit"}
    assert welcome["reentry"] == {"mode": "never"} and welcome["enabled"] is False
    thanks = next(c for c in result.converted if c.id == "sign-up-thanks")
    assert thanks.body["entry"] == {"type": "event", "event": "Signed Up"}
    assert thanks.body["steps"]["call"]["type"] == "webhook"
    assert thanks.body["reentry"] == {"mode": "cooldown", "days": 7}
    assert "/Activities/Later/Wait/WaitTime" in [n.path for n in thanks.notes]


def test_a_split_on_segment_conditions_waits_its_evaluation_time_first() -> None:
    split = {
        "Condition": {"Conditions": [{"SegmentCondition": {"SegmentId": SEGMENT_ID}}], "Operator": "ANY"},
        "EvaluationWaitTime": {"WaitFor": "PT1H"},
        "TrueActivity": "Yes",
        "FalseActivity": "",
    }
    item = journey({"Split": {"ConditionalSplit": split}, "Yes": {"EMAIL": {"TemplateName": "WelcomeEmail"}}}, "Split")
    steps = one("journey", convert(Item("journey", "f", item))).body["steps"]
    assert steps["split"] == {"type": "wait", "duration": "1h", "next": "split-evaluate"}
    assert steps["split-evaluate"]["yes"] == "yes" and steps["split-evaluate"]["no"] == "end"


def test_an_activity_no_path_reaches_is_reported_and_left_out() -> None:
    activities = {
        "A": {"EMAIL": {"TemplateName": "WelcomeEmail"}},
        "Orphan": {"Wait": {"WaitTime": {"WaitFor": "P1D"}}},
    }
    converted = one("journey", convert(Item("journey", "f", journey(activities, "A"))))
    assert "orphan" not in converted.body["steps"]
    assert "/Activities/Orphan" in [n.path for n in converted.notes]


def test_a_journey_started_by_several_events_is_not_converted() -> None:
    start = {"EventStartCondition": {"EventFilter": {"Dimensions": {"EventType": {"Values": ["a", "b"]}}}}}
    item = journey({"A": {"EMAIL": {"TemplateName": "T"}}}, "A", StartCondition=start)
    result = convert(Item("journey", "f", item))
    assert result.converted == [] and result.refused[0].notes[-1].path == "/StartCondition"


def test_iso_durations_and_ids() -> None:
    assert [iso_minutes(t) for t in ("PT1H", "P2D", "P1DT12H", "P1W", "PT90S", "1 day")] == [
        60,
        2880,
        2160,
        10080,
        None,
        None,
    ]
    assert slug("WelcomeEmail", "x") == "welcome-email" and slug("¡¡", "fallback") == "fallback"


# ------------------------------------------------------------------------------ round trip
def test_every_fixture_converts_and_every_written_file_passes_midstages_own_checks(tmp_path: Path) -> None:
    outcome = convert_files(input_files([str(FIXTURES)]), tmp_path, now=NOW)
    documents = load_documents(tmp_path)  # what `apply` checks before it sends anything
    kinds = sorted({d.kind for d in documents})
    assert kinds == ["journey", "rule", "segment", "template"]
    written = {(c.kind, c.id) for c in outcome.written}
    assert {(d.kind, d.id) for d in documents} == written - {("campaign", "weekly-newsletter")}
    segments = {d.id for d in documents if d.kind == "segment"}
    template_ids = {d.id for d in documents if d.kind == "template"}
    for path in (tmp_path / "campaigns").glob("*.yaml"):
        body = CampaignCreate.model_validate(yaml.safe_load(path.read_text()))
        assert validate_campaign(body, segments_known=segments, templates_known=template_ids, now=NOW) == []
    # Nothing vanished: every Pinpoint item is converted or reported.
    sources = {c.source.split(" /")[0] for c in outcome.written} | {r.source for r in outcome.refused}
    assert len([s for s in sources if "campaign 'MyCampaign" in s]) == 2
    assert any("voice template 'Callback'" in s for s in sources)
    report = (tmp_path / "conversion-report.txt").read_text()
    assert report.strip().endswith("4 converted, 8 converted with notes, 4 not converted")


def test_every_item_is_written_or_reported(tmp_path: Path) -> None:
    files = input_files([str(FIXTURES)])
    given = sum(len(items_of(str(f), json.loads(f.read_text()))[0] or [None]) for f in files)
    outcome = convert_files(files, tmp_path, now=NOW)
    inline = [c for c in outcome.written if " /MessageConfiguration" in c.source]
    listed_and_given = 1  # WelcomeEmail is both listed and given in full: one definition
    assert len(outcome.written) - len(inline) + len(outcome.refused) == given - listed_and_given


def test_the_command_writes_the_files_and_prints_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pinpoint-convert", str(FIXTURES / "list-journeys.json"), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "converted with notes (2):" in printed and "/Activities/CallCenter/ContactCenter" in printed
    assert sorted(p.name for p in (tmp_path / "journeys").iterdir()) == ["sign-up-thanks.yaml", "welcome-journey.yaml"]
    assert cli.main(["pinpoint-convert", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert cli.main(["pinpoint-convert", str(FIXTURES), "--out", str(tmp_path), "--apply"]) == 2


def test_a_page_with_a_next_token_says_the_next_pages_are_missing() -> None:
    page = {"SegmentsResponse": {"Item": [segment({"Location": {"Country": {"Values": ["US"]}}})], "NextToken": "abc"}}
    items, refused = items_of("segments.json", page)
    assert len(items) == 1
    assert refused[0].notes[0].path == "/SegmentsResponse/NextToken" and "--token abc" in refused[0].notes[0].message


def test_a_second_run_replaces_the_first_and_a_foreign_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert_files(input_files([str(FIXTURES)]), out, now=NOW)
    assert (out / "campaigns" / "weekly-newsletter.yaml").is_file()
    # Later, the campaign's last run is past: it is no longer converted, and its old file goes.
    convert_files(input_files([str(FIXTURES)]), out, now=datetime(2032, 1, 1, tzinfo=UTC))
    assert not (out / "campaigns" / "weekly-newsletter.yaml").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="did not write"):
        convert_files(input_files([str(FIXTURES)]), tmp_path / "mine", now=NOW)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_jinja_delimiters_in_pinpoint_text_are_printed_as_they_are() -> None:
    item = {"TemplateName": "Braces", "Body": "50{%} off {#1 pick} {{ unclosed"}
    converted = one("template", convert(Item("template", "f", item, "sms")))
    assert render(converted.body, {}) == {"body": "50{%} off {#1 pick} {{ unclosed"}


def test_fields_of_another_type_than_documented_are_reported_not_raised() -> None:
    bad = [
        Item("segment", "f", segment({"Demographic": ["EMAIL"]})),
        Item("segment", "f", {**segment(), "Id": "s2", "SegmentGroups": {"Groups": "all"}}),
        Item("campaign", "f", campaign(Schedule="daily")),
        Item("journey", "f", journey({"A": {"Wait": {"WaitTime": ["P1D"]}}}, "A")),
        Item(
            "template",
            "f",
            {"TemplateName": "T", "Subject": "s", "HtmlPart": 5, "DefaultSubstitutions": "[1]"},
            "email",
        ),
    ]
    result = convert(*bad)
    assert len(result.converted) + len(result.refused) >= len(bad)
    assert all(r.notes for r in result.refused)


def _mutated(document: Any, rng: random.Random) -> Any:
    """The document with one node, picked at random, replaced by a value of another type."""
    paths: list[tuple[Any, Any]] = []
    stack = [document]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
        for key in keys:
            paths.append((node, key))
            stack.append(node[key])
    parent, key = rng.choice(paths)
    parent[key] = rng.choice([None, 0, -1, 1.5, True, "", "x", "PT", [], {}, [None], {"Values": None}, "IMMEDIATE"])
    return document


def test_any_one_field_of_any_type_is_converted_or_reported_never_raised(tmp_path: Path) -> None:
    rng = random.Random(20)
    originals = {p.name: json.loads(p.read_text()) for p in FIXTURES.glob("*.json")}
    for _ in range(300):
        name = rng.choice(sorted(originals))
        document = _mutated(json.loads(json.dumps(originals[name])), rng)
        items, refused = items_of(name, document)
        outcome = check(convert_project(items, NOW), NOW)  # the admin API's checks, as the command runs them
        for converted in outcome.written:
            assert document_text(converted)
        assert all(r.notes for r in [*refused, *outcome.refused])


def test_names_with_line_breaks_stay_in_the_files_comments() -> None:
    item = {"TemplateName": "Two\nlines", "Body": "{{Id}}\nid: not-a-key"}
    converted = one("template", convert(Item("template", "in\nput.json", item, "sms")))
    text = document_text(converted)
    assert yaml.safe_load(text)["id"] == converted.id == "two-lines-sms"


def test_a_file_that_is_not_a_cli_answer_is_reported(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.json").write_text("{not json")
    (tmp_path / "in" / "other.json").write_text('{"ApplicationResponse": {"Id": "x"}}')
    outcome = convert_files(input_files([str(tmp_path / "in")]), tmp_path / "out", now=NOW)
    assert outcome.written == [] and len(outcome.refused) == 2
    assert "not JSON" in outcome.refused[0].notes[0].message
