"""SES feedback parsing: every event type SES publishes, as SNS envelopes and raw, and hostile input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from midstage.logic.feedback import (
    MAX_BODY_BYTES,
    Feedback,
    FeedbackError,
    is_subscription_confirmation,
    parse_notification,
)

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "ses"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return loaded


def envelope(event: dict[str, Any], timestamp: str = "2026-11-22T23:00:00.000Z") -> str:
    """The body an SQS subscription to the SNS topic receives."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "5a8e4f1c-0000-4000-8000-000000000001",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:midstage-ses-events",
            "Message": json.dumps(event),
            "Timestamp": timestamp,
        }
    )


def one(body: str | bytes) -> Feedback:
    (feedback,) = parse_notification(body)
    return feedback


EXPECTED: dict[str, dict[str, Any]] = {
    "bounce_permanent": {
        "kind": "bounce",
        "provider_message_id": "0100017d9a1b2c3d-11111111-2222-3333-4444-555555555555-000000",
        "message_id": "01JD5Q3ZK8M4TQ7V2XW9YB6N0C",
        "recipients": ("recipient@example.com",),
        "at": "2026-11-22T12:00:05.347Z",
        "permanent": True,
        "suppress": True,
        "reason": "Permanent/General: smtp; 550 5.1.1 user unknown",
    },
    "bounce_transient": {
        "kind": "bounce",
        "recipients": ("full@example.org",),
        "at": "2026-11-22T12:10:00.000Z",
        "permanent": False,
        "suppress": False,
        "reason": "Transient/MailboxFull: smtp; 452 4.2.2 The email account that you tried to reach is over quota",
    },
    "bounce_undetermined": {
        "kind": "bounce",
        "recipients": ("unknown@example.net",),
        "permanent": False,
        "suppress": False,
        "reason": "Undetermined/Undetermined",
    },
    "complaint": {
        "kind": "complaint",
        "message_id": "01JD5Q3ZK8M4TQ7V2XW9YB6N0F",
        "recipients": ("angry.reader@example.com",),
        "at": "2026-11-22T13:00:01.000Z",
        "permanent": False,
        "suppress": True,
        "reason": "complaint: abuse",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0 Safari/537.36",
    },
    "delivery": {
        "kind": "delivery",
        "message_id": "01JD5Q3ZK8M4TQ7V2XW9YB6N0G",
        "recipients": ("jane.doe@example.com",),
        "at": "2026-11-22T12:00:05.521Z",
        "suppress": False,
        "reason": "250 2.6.0 Message received",
    },
    "send": {
        "kind": "send",
        "recipients": ("reader@example.com",),
        "at": "2026-11-22T12:00:04.109Z",
        "reason": "accepted by SES",
    },
    "reject": {"kind": "reject", "recipients": ("reader@example.com",), "reason": "Bad content", "suppress": False},
    "open": {
        "kind": "open",
        "at": "2026-11-22T14:30:11.000Z",
        "reason": "opened",
        "link": None,
        "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148",
    },
    "click": {
        "kind": "click",
        "message_id": "01JD5Q3ZK8M4TQ7V2XW9YB6N0M",
        "at": "2026-11-22T14:31:02.000Z",
        "link": "https://shop.example.com/black-friday?utm_source=midstage&utm_medium=email",
        "reason": "clicked",
    },
    "rendering_failure": {
        "kind": "rendering_failure",
        "at": "2026-11-22T12:00:04.109Z",
        "reason": "Attribute 'firstName' is not present in the rendering data.: weekly-digest",
        "suppress": False,
    },
    "delivery_delay": {
        "kind": "delivery_delay",
        "recipients": ("slow@example.org",),
        "at": "2026-11-22T12:30:00.000Z",
        "reason": "delayed: TransientCommunicationFailure: smtp; 421 4.4.1 Unable to connect to remote host",
        "suppress": False,
    },
    "subscription": {
        "kind": "subscription",
        "recipients": ("leaver@example.com",),
        "at": "2026-11-22T15:00:00.000Z",
        "reason": "unsubscribed from all topics via UnsubscribeHeader",
        "suppress": False,
    },
    "legacy_bounce": {
        "kind": "bounce",
        "message_id": None,  # identity notifications carry no message tags
        "recipients": ("suppressed@example.com",),
        "permanent": True,
        "suppress": True,
        "at": "2026-11-22T16:00:00.500Z",
    },
    "legacy_complaint": {
        "kind": "complaint",
        "recipients": ("fbl@example.net",),
        "suppress": True,
        "user_agent": "ExampleCorp Feedback Loop (V0.01)",
    },
    "legacy_delivery": {
        "kind": "delivery",
        "recipients": ("reader@example.com",),
        "reason": "250 ok: Message 12345 accepted",
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_sample_parses_through_sns_and_raw(name: str) -> None:
    event = sample(name)
    through_sns = one(envelope(event))
    assert one(json.dumps(event)) == through_sns  # raw message delivery gives the same answer
    for field, value in EXPECTED[name].items():
        assert getattr(through_sns, field) == value, field
    assert through_sns.provider_message_id == event["mail"]["messageId"]


def test_every_ses_event_type_has_a_sample() -> None:
    kinds = {one(envelope(sample(name))).kind for name in EXPECTED}
    assert kinds == {
        "bounce",
        "complaint",
        "delivery",
        "send",
        "reject",
        "open",
        "click",
        "rendering_failure",
        "delivery_delay",
        "subscription",
    }


def test_a_checked_in_sns_envelope() -> None:
    feedback = one((SAMPLES / "sns_notification_delivery.json").read_text())
    assert (feedback.kind, feedback.recipients) == ("delivery", ("jane.doe@example.com",))


def test_bytes_bodies_are_accepted() -> None:
    assert one(envelope(sample("complaint")).encode()).kind == "complaint"


def test_timestamps_fall_back_from_event_to_mail_to_envelope() -> None:
    event = sample("send")
    assert one(envelope(event)).at == "2026-11-22T12:00:04.109Z"
    del event["mail"]["timestamp"]
    assert one(envelope(event, timestamp="2026-11-22T12:00:06.5Z")).at == "2026-11-22T12:00:06.500Z"
    with pytest.raises(FeedbackError, match="no timestamp"):
        parse_notification(json.dumps(event))
    event["mail"]["timestamp"] = "2026-11-22T14:00:04+02:00"
    assert one(json.dumps(event)).at == "2026-11-22T12:00:04.000Z"


def test_a_not_spam_report_does_not_suppress() -> None:
    event = sample("complaint")
    event["complaint"]["complaintFeedbackType"] = "not-spam"
    assert one(envelope(event)).suppress is False
    event["complaint"]["complaintFeedbackType"] = None
    feedback = one(envelope(event))
    assert (feedback.suppress, feedback.reason) == (True, "complaint: unspecified")


def test_only_the_bounced_recipients_are_reported() -> None:
    event = sample("bounce_permanent")
    event["mail"]["destination"] = ["recipient@example.com", "cc@example.com"]
    assert one(envelope(event)).recipients == ("recipient@example.com",)


def test_topic_opt_out_without_unsubscribe_all() -> None:
    event = sample("subscription")
    event["subscription"]["newTopicPreferences"]["unsubscribeAll"] = False
    assert (
        one(envelope(event)).reason
        == "subscription preferences changed via UnsubscribeHeader: opted out of weekly-digest"
    )


# --------------------------------------------------------------------------------- SNS housekeeping


def test_subscription_confirmation_is_recognised_and_yields_nothing() -> None:
    body = (SAMPLES / "sns_subscription_confirmation.json").read_text()
    assert is_subscription_confirmation(body)
    assert parse_notification(body) == []
    assert not is_subscription_confirmation(envelope(sample("send")))
    assert not is_subscription_confirmation("not json")
    assert not is_subscription_confirmation("[1]")


def test_unsubscribe_confirmation_and_ses_topic_notice_yield_nothing() -> None:
    assert parse_notification(json.dumps({"Type": "UnsubscribeConfirmation", "Message": "bye"})) == []
    assert parse_notification(envelope(sample("legacy_subscription_succeeded"))) == []


# ------------------------------------------------------------------------------------ refused input


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[]", "not a JSON object"),
        ("null", "not a JSON object"),
        ('"a string"', "not a JSON object"),
        (b"\xff\xfe{}", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        (json.dumps({"Type": "Notification"}), "no Message string"),
        (json.dumps({"Type": "Notification", "Message": {"eventType": "Send"}}), "no Message string"),
        (json.dumps({"Type": "Notification", "Message": "{not json"}), "SNS Message is not valid JSON"),
        (json.dumps({"Type": "Notification", "Message": "[1, 2]"}), "SNS Message is missing or not a JSON object"),
        (json.dumps({"Type": "Surprise", "Message": "{}"}), "unknown SNS message type 'Surprise'"),
        (json.dumps({"hello": "world"}), "neither an SES event"),
        (json.dumps({"eventType": "Explode", "mail": {}}), "unknown SES event type 'Explode'"),
        (json.dumps({"eventType": ["Bounce"], "mail": {}}), "unknown SES event type"),
        (json.dumps({"notificationType": "Open", "mail": {}}), "unknown SES notification type 'Open'"),
    ],
)
def test_malformed_input_is_refused_with_a_reason(body: str | bytes, words: str) -> None:
    with pytest.raises(FeedbackError) as refused:
        parse_notification(body)
    assert words in refused.value.reason


def mutated(name: str, change: Any) -> str:
    event = copy.deepcopy(sample(name))
    change(event)
    return envelope(event)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (mutated("send", lambda e: e.pop("mail")), "mail is missing"),
        (mutated("send", lambda e: e.update(mail="x")), "mail is missing or not a JSON object"),
        (mutated("send", lambda e: e["mail"].pop("messageId")), "mail.messageId is missing"),
        (mutated("send", lambda e: e["mail"].update(messageId="  ")), "mail.messageId is missing"),
        (mutated("bounce_permanent", lambda e: e.pop("bounce")), "bounce is missing"),
        (mutated("bounce_permanent", lambda e: e["bounce"].pop("bouncedRecipients")), "holds no email address"),
        (
            mutated("bounce_permanent", lambda e: e["bounce"].update(bouncedRecipients=[{"emailAddress": "nope"}])),
            "bounce.bouncedRecipients holds no email address",
        ),
        (mutated("complaint", lambda e: e["complaint"].update(complainedRecipients=[])), "holds no email address"),
        (mutated("click", lambda e: e.update(click=None)), "click is missing"),
        (mutated("rendering_failure", lambda e: e.pop("failure")), "failure is missing"),
        (mutated("delivery", lambda e: e["delivery"].update(timestamp="yesterday")), "'yesterday' is not ISO 8601"),
    ],
)
def test_missing_fields_are_refused_with_a_reason(body: str, words: str) -> None:
    with pytest.raises(FeedbackError) as refused:
        parse_notification(body)
    assert words in refused.value.reason


def test_optional_details_may_be_absent() -> None:
    send = sample("send")
    del send["send"]
    assert one(envelope(send)).kind == "send"
    delay = sample("delivery_delay")
    delay["deliveryDelay"] = {"timestamp": "2026-11-22T12:30:00.000Z"}
    feedback = one(envelope(delay))
    assert (feedback.recipients, feedback.reason) == (("slow@example.org",), "delayed: unspecified")
    tagless = sample("open")
    tagless["mail"]["tags"] = {"midstage-message": "not-a-list"}
    assert one(envelope(tagless)).message_id is None


def test_oversized_input_is_refused_before_parsing() -> None:
    event = sample("send")
    event["mail"]["headers"] = [{"name": "X-Pad", "value": "x" * MAX_BODY_BYTES}]
    with pytest.raises(FeedbackError, match="over the 262144-byte limit"):
        parse_notification(envelope(event))
    multibyte = "é" * (MAX_BODY_BYTES // 2 + 1)  # under the limit in characters, over it in bytes
    with pytest.raises(FeedbackError, match="byte limit"):
        parse_notification(json.dumps({"x": multibyte}, ensure_ascii=False))


def test_hostile_strings_are_neutralised() -> None:
    event = sample("bounce_permanent")
    event["bounce"]["bouncedRecipients"] = [
        {"emailAddress": "Victim@Example.com\r\nX-Injected: 1", "diagnosticCode": "x"},
        {"emailAddress": "<script>@example.com"},
        {"emailAddress": "a@b.c, d@e.f"},
        {"emailAddress": 42},
        {"emailAddress": "x" * 400 + "@example.com"},
        "not-an-object",
        {
            "emailAddress": "Real.Victim@Example.com",
            "diagnosticCode": "550\r\n\x1b[31mFAKE LOG LINE\u202e" + "z" * 5000,
        },
    ]
    event["bounce"]["bounceSubType"] = "General\nINFO forged entry"
    event["mail"]["tags"]["midstage-message"] = ["id\x00with\nnul"]
    feedback = one(envelope(event))
    assert feedback.recipients == ("real.victim@example.com",)
    assert feedback.reason.startswith("Permanent/General INFO forged entry: x; 550 [31mFAKE LOG LINE z")
    assert len(feedback.reason) <= 1000
    assert not any(ord(char) < 32 or char in "\u202e\u2028" for char in feedback.reason)
    assert feedback.message_id == "id with nul"


def test_hostile_click_and_open_strings_are_bounded() -> None:
    event = sample("click")
    event["click"]["link"] = "https://example.com/\r\n" + "a" * 10_000
    event["click"]["userAgent"] = "UA\u2028" + "b" * 10_000
    feedback = one(envelope(event))
    assert feedback.link is not None and len(feedback.link) <= 2048 and "\n" not in feedback.link
    assert feedback.user_agent is not None and len(feedback.user_agent) <= 512
    assert "\u2028" not in feedback.user_agent
    event["click"]["link"] = {"href": "https://example.com"}
    event["click"]["userAgent"] = None
    feedback = one(envelope(event))
    assert (feedback.link, feedback.user_agent) == (None, None)


def test_an_error_never_echoes_a_long_hostile_value() -> None:
    with pytest.raises(FeedbackError) as refused:
        parse_notification(json.dumps({"eventType": "X\n" + "y" * 10_000, "mail": {}}))
    assert len(refused.value.reason) < 120 and "\n" not in refused.value.reason


# ------------------------------------------------------------------------------------ what it changes
class _Ledger:
    def __init__(self, message_id: str, profile_id: str) -> None:
        self.records = {message_id: {"id": message_id, "profileId": profile_id}}

    def get(self, message_id: str) -> dict[str, Any] | None:
        return self.records.get(message_id)

    def update_status(self, message_id: str, status: str, reason: str, now: Any, **_: Any) -> bool:
        return message_id in self.records


class _Suppressions:
    def __init__(self) -> None:
        self.added: list[tuple[str, str, str, str]] = []

    def suppress(self, channel: str, address: str, reason: str, scope: str, now: Any, **_: Any) -> None:
        self.added.append((channel, address, reason, scope))


class _Events:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, by_person: dict[str, list[dict[str, Any]]]) -> None:
        self.sent.extend(event for events in by_person.values() for event in events)


def test_an_ses_unsubscribe_suppresses_marketing_and_refuses_the_persons_email_marketing_consent() -> None:
    from midstage.logic.profile import apply_event
    from midstage.models.profile import Profile
    from midstage.services.feedback import handle
    from tests.support.fakes import MemoryProfiles

    leaver = Profile(
        id="p-leaver",
        created_at="2026-01-01T00:00:00.000Z",
        traits={"email": "leaver@example.com"},
        identities={"user_id": ["u-leaver"]},
    )
    notice = one(envelope(sample("subscription")))
    ledger, suppressions, events = _Ledger(notice.message_id, leaver.id), _Suppressions(), _Events()
    handle([notice], ledger, suppressions, MemoryProfiles(leaver), events)  # type: ignore[arg-type]
    assert suppressions.added == [("email", "leaver@example.com", "unsubscribe", "marketing")]
    (event,) = events.sent
    assert (event["event"], event["timestamp"]) == ("Unsubscribed", "2026-11-22T15:00:00.000Z")
    assert event["properties"]["source"] == "ses:subscription"
    # which the profile updater applies as a refusal, newest by time
    apply_event(leaver, event)
    assert leaver.consent["email:marketing"]["granted"] is False
    assert leaver.consent["email:marketing"]["source"] == "ses:subscription"
