"""pinpoint-channels: a Pinpoint project's channel settings as a checklist for the new stack.

The fixtures in tests/fixtures/pinpoint-channels are written from the Pinpoint API reference's
channel resources (Email, SMS, APNs, GCM, Voice channel and Channels): the field names are
checked against botocore's pinpoint service model below.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import botocore
import pytest

from midstage import cli
from midstage.logic.pinpoint import items_of
from midstage.logic.pinpoint.channels import RESPONSES, read

FIXTURES = Path(__file__).parents[1] / "fixtures" / "pinpoint-channels"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def fixtures() -> list[tuple[str, Any]]:
    return [(path.name, json.loads(path.read_text())) for path in sorted(FIXTURES.glob("*.json"))]


def test_every_fixture_field_is_one_the_pinpoint_api_has() -> None:
    model_file = next((Path(botocore.__file__).parent / "data" / "pinpoint").glob("*/service-2.json*"))
    opener = gzip.open if model_file.suffix == ".gz" else open
    with opener(model_file, "rt") as handle:
        shapes = json.load(handle)["shapes"]
    for name, document in fixtures():
        ((key, answer),) = document.items()
        shape = "ChannelsResponse" if key == "ChannelsResponse" else key
        assert key in RESPONSES or key == "ChannelsResponse", name
        assert set(answer) <= set(shapes[shape]["members"]), name
        if key == "ChannelsResponse":
            for summary in answer["Channels"].values():
                assert set(summary) <= set(shapes["ChannelResponse"]["members"]), name


def test_email_says_where_the_identity_is_verified_and_sets_the_sender() -> None:
    plan = read([("email.json", fixture("email"))]).plans["EMAIL"]
    assert plan.enabled is True
    assert plan.parameters == {"EmailSender": "Shop <news@mail.example.com>"}
    assert plan.steps[0].startswith("SES identity mail.example.com in us-west-2: Pinpoint sent through it")
    assert any("configuration set pinpoint-events" in step for step in plan.steps)
    assert any(step.startswith("MessagesPerSecond 14: nothing to set") for step in plan.steps)


def test_sms_sets_the_sender_id_and_keeps_the_origination_number() -> None:
    plan = read([("sms.json", fixture("sms"))]).plans["SMS"]
    assert plan.settings == {"SMS_SENDER_ID": "MYSHOP"}
    assert any("+12065550199" in step and "End User Messaging SMS" in step for step in plan.steps)
    assert any("promotional 20/s, transactional 20/s" in step for step in plan.steps)


@pytest.mark.parametrize(
    ("changes", "credential"),
    [
        ({}, "APNs signing key (.p8)"),
        ({"HasTokenKey": False, "DefaultAuthenticationMethod": "CERTIFICATE"}, "APNs certificate"),
    ],
)
def test_apns_says_which_credential_to_bring(changes: dict[str, Any], credential: str) -> None:
    answer = {"APNSChannelResponse": {**fixture("apns")["APNSChannelResponse"], **changes}}
    checklist = read([("apns.json", answer)])
    (step,) = checklist.plans["APNS"].steps
    assert "create-platform-application --name midstage-ios --platform APNS" in step and credential in step
    assert checklist.parameters() == {"PushApplications": '{"ios":"<ARN of midstage-ios>"}'}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({}, "legacy server key, which Google no longer accepts"),
        ({"HasFcmServiceCredentials": True, "DefaultAuthenticationMethod": "TOKEN"}, "service account JSON (FCM"),
    ],
)
def test_fcm_asks_for_a_service_account(changes: dict[str, Any], words: str) -> None:
    answer = {"GCMChannelResponse": {**fixture("gcm")["GCMChannelResponse"], **changes}}
    (step,) = read([("gcm.json", answer)]).plans["GCM"].steps
    assert "--platform GCM" in step and words in step


def test_the_whole_project_adds_up_to_one_deploy_command_and_names_what_has_no_counterpart() -> None:
    checklist = read(fixtures())
    assert sorted(checklist.plans) == ["ADM", "APNS", "EMAIL", "GCM", "SMS", "VOICE"]
    assert checklist.parameters() == {
        "EmailSender": "Shop <news@mail.example.com>",
        "PushApplications": '{"android":"<ARN of midstage-android>","ios":"<ARN of midstage-ios>"}',
    }
    assert checklist.plans["VOICE"].unsupported == ["Midstage has no voice channel"]
    assert checklist.plans["ADM"].enabled is False and "not a push service" in checklist.plans["ADM"].unsupported[0]
    # a channel's own answer replaces what get-channels alone said of it, whichever is read first
    alone = read([("channels.json", fixture("channels"))])
    assert alone.plans["EMAIL"].steps == ["run `aws pinpoint get-email-channel --application-id <id>` for its settings"]
    after = read([("channels.json", fixture("channels")), ("email.json", fixture("email"))])
    before = read([("email.json", fixture("email")), ("channels.json", fixture("channels"))])
    assert after.plans["EMAIL"].steps == before.plans["EMAIL"].steps == checklist.plans["EMAIL"].steps


@pytest.mark.parametrize(
    "document",
    [[1], "text", {}, {"Segments": {}}, {"EmailChannelResponse": "x"}, {"ChannelsResponse": {"Channels": 3}}],
)
def test_what_is_not_a_channel_answer_is_named_and_skipped(document: Any) -> None:
    checklist = read([("odd.json", document)])
    assert all(not plan.steps for plan in checklist.plans.values())
    if document != {"ChannelsResponse": {"Channels": 3}}:
        assert [problem.partition(":")[0] for problem in checklist.problems] == ["odd.json"]


def test_an_archived_channel_carries_nothing_over() -> None:
    answer = {"SMSChannelResponse": {**fixture("sms")["SMSChannelResponse"], "IsArchived": True}}
    plan = read([("sms.json", answer)]).plans["SMS"]
    assert (plan.steps, plan.settings) == ([], {})
    assert plan.unsupported == ["archived in Pinpoint: nothing to carry over"]


def test_the_command_prints_the_checklist_and_the_definitions_converter_points_at_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    assert cli.main(["pinpoint-channels", str(FIXTURES), str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "EMAIL (enabled in Pinpoint)" in printed and "  [ ] SES identity mail.example.com" in printed
    assert f"skipped: {tmp_path / 'broken.json'}: not a JSON object" in printed
    assert "and set SMS_SENDER_ID=MYSHOP on the deliver function" in printed
    assert cli.main(["pinpoint-channels", str(tmp_path / "missing")]) == 2
    # pinpoint-convert, given a channel answer, says which command reads it
    _, refused = items_of("email.json", fixture("email"))
    assert "pinpoint-channels" in refused[0].notes[0].message
