"""Pinpoint definitions converted and applied to the local cloud, and a converted journey run.

`pinpoint-convert --approve --apply` reads AWS CLI answers (tests/fixtures/pinpoint, built from
AWS's documentation) and a journey written here in the API reference's JourneyResponse shape,
checks and writes the Midstage definitions, loads them through the admin API (`apply`, then
the campaigns), and a person who does the journey's start event gets its email and its SMS.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from midstage import cli
from tests.e2e.conftest import Platform
from tests.e2e.test_rules_delivery import DAYTIME, Scenario, wait_for, zone_at_local_hour

FIXTURES = Path(__file__).parents[1] / "fixtures" / "pinpoint"
TAG = uuid.uuid4().hex[:8]
EVENT = f"Pinpoint Sign Up {TAG}"  # the journey's own event: no other module's people enter it


def pinpoint_journey() -> dict[str, object]:
    """A get-journey answer: an email, then an SMS, for everyone who does EVENT
    (https://docs.aws.amazon.com/pinpoint/latest/apireference/apps-application-id-journeys-journey-id.html)."""
    return {
        "JourneyResponse": {
            "Activities": {
                "Welcome": {"EMAIL": {"NextActivity": "Text", "TemplateName": "WelcomeEmail"}},
                "Text": {"SMS": {"TemplateName": "TestTemplate"}},
            },
            "ApplicationId": "6e0b7591a90841d2b5d93fa11143e5a7",
            "Id": f"e2e{TAG}",
            "Limits": {"EndpointReentryCap": 1},
            "Name": f"Pinpoint welcome {TAG}",
            "StartActivity": "Welcome",
            "StartCondition": {
                "EventStartCondition": {
                    "EventFilter": {"Dimensions": {"EventType": {"Values": [EVENT]}}, "FilterType": "ENDPOINT"}
                }
            },
            "State": "ACTIVE",
        }
    }


@pytest.fixture(scope="module")
def converted(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    inputs = tmp_path_factory.mktemp("pinpoint")
    for name in ("get-email-template.json", "get-email-template-offer.json", "get-sms-template.json"):
        shutil.copy(FIXTURES / name, inputs / name)
    for name in ("get-segments.json", "get-campaign-weekly.json", "get-push-template.json"):
        shutil.copy(FIXTURES / name, inputs / name)
    (inputs / "get-journey.json").write_text(json.dumps(pinpoint_journey()))
    out = tmp_path_factory.mktemp("converted")
    command = ["pinpoint-convert", str(inputs), "--out", str(out), "--approve", "--apply"]
    assert cli.main([*command, "--url", platform.url, "--key", platform.admin_key]) == 0
    yield out
    answer = platform.admin("PATCH", f"/v1/journeys/pinpoint-welcome-{TAG}", {"enabled": False})
    assert answer.status == 200, answer.body


def test_every_converted_definition_is_on_the_api(platform: Platform, converted: Path) -> None:
    for folder in ("templates", "segments", "journeys", "campaigns"):
        for path in (converted / folder).glob("*.yaml"):
            answer = platform.admin("GET", f"/v1/{folder}/{path.stem}")
            assert answer.status == 200, (folder, path.stem, answer.body)
    campaign = platform.admin("GET", "/v1/campaigns/weekly-newsletter").body
    assert campaign["status"] == "draft" and campaign["holdout_percent"] == 10
    assert [v["percent"] for v in campaign["variants"]] == [66.67, 33.33]
    welcome = platform.admin("GET", "/v1/templates/welcome-email").body
    assert welcome["approved"]["version"] == welcome["latest"]["version"]  # converted without notes
    offer = platform.admin("GET", "/v1/templates/offer-email").body
    assert offer["approved"] is None  # converted with notes: a person approves it after a preview


def test_applying_the_conversion_again_changes_nothing(
    platform: Platform, converted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert cli.main(["apply", str(converted), "--url", platform.url, "--key", platform.admin_key]) == 0
    printed = capsys.readouterr().out
    assert "0 created, 0 updated, 0 approved" in printed, printed


def test_the_converted_journey_sends_its_email_then_its_sms(platform: Platform, converted: Path) -> None:
    # Given the converted journey, switched on, and a person with the traits its templates read
    enabled = platform.admin("PATCH", f"/v1/journeys/pinpoint-welcome-{TAG}", {"enabled": True})
    assert enabled.status == 200, enabled.body
    person = Scenario(platform)
    person.identify(zone_at_local_hour(DAYTIME), FirstName="Ann", city="Lyon")

    # When they do the journey's start event
    person.track(EVENT)

    # Then they get the welcome email, rendered from the converted Handlebars, and the SMS
    [email] = wait_for(person.emails, "the converted welcome email", timeout=60)
    assert email.subject == "Welcome, Ann"
    assert email.text is not None and "Hello Ann, welcome to Lyon." in email.text
    [sms] = wait_for(person.sms, "the converted SMS", timeout=60)
    assert sms.message == "hello\n how are you?\n food is good"
