"""The outbox's pure parts: reading sent messages back, SES's event records, and the printed outbox."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from infra.localcloud.outbox import (
    Attachment,
    SentEmail,
    camel_case,
    email_from_raw,
    email_from_simple,
    format_outbox,
    identity_configuration_set,
    push_payload,
    sending_identity,
    ses_event_record,
    ses_event_type,
    ses_mail_object,
    sesv2_request_details,
)

NOW = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
SENT_AT = datetime(2030, 1, 2, 3, 0, tzinfo=UTC)


def sent(**changes: Any) -> SentEmail:
    email = SentEmail(
        message_id="0100-abc",
        source="Shop <shop@example.com>",
        to=("ann@example.net",),
        cc=("bob@example.net",),
        subject="Hi",
        headers={"From": "Shop <shop@example.com>", "To": "ann@example.net", "Subject": "Hi"},
        tags={"message": "m-1"},
        configuration_set="mail",
        sent_at=SENT_AT,
    )
    return replace(email, **changes)


# ---------------------------------------------------------------------------------- reading back


def test_a_simple_message_keeps_both_bodies_headers_and_tags_from_the_request() -> None:
    extra = sesv2_request_details(
        {
            "ConfigurationSetName": "mail",
            "EmailTags": [{"Name": "message", "Value": "m-1"}],
            "ReplyToAddresses": ["help@example.com"],
            "Destination": {"ToAddresses": ["ann@example.net"], "BccAddresses": ["audit@example.com"]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": "Hi"},
                    "Body": {"Text": {"Data": "plain"}, "Html": {"Data": "<p>rich</p>"}},
                    "Headers": [{"Name": "X-Entity", "Value": "e-1"}],
                    "Attachments": [{"FileName": "a.txt", "ContentType": "text/plain", "RawContent": "aGVsbG8="}],
                }
            },
        }
    )

    email = email_from_simple(
        "id-1",
        "shop@example.com",
        {"ToAddresses": ["ann@example.net"], "BccAddresses": ["audit@example.com"]},
        "Hi",
        "<p>rich</p>",
        extra,
    )

    assert (email.text, email.html) == ("plain", "<p>rich</p>")
    assert email.bcc == ("audit@example.com",)
    assert email.reply_to == ("help@example.com",)
    assert email.headers == {
        "From": "shop@example.com",
        "To": "ann@example.net",
        "Reply-To": "help@example.com",
        "Subject": "Hi",
        "X-Entity": "e-1",
    }
    assert email.tags == {"message": "m-1"}
    assert email.configuration_set == "mail"
    assert email.attachments == (Attachment("a.txt", "text/plain", 5),)


def test_without_the_request_moto_s_single_body_is_read_as_html_or_text() -> None:
    html = email_from_simple("id", "a@example.com", {"ToAddresses": ["b@example.net"]}, "s", "<b>x</b>", {})
    text = email_from_simple("id", "a@example.com", {"ToAddresses": ["b@example.net"]}, "s", "1 < 2", {})

    assert (html.text, html.html) == (None, "<b>x</b>")
    assert (text.text, text.html) == ("1 < 2", None)


def test_a_raw_message_is_parsed_and_its_ses_headers_name_set_and_tags() -> None:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = "Ann <ann@example.net>, carl@example.net"
    message["Cc"] = "bob@example.net"
    message["Subject"] = "=?utf-8?q?Caf=C3=A9?="
    message["X-SES-CONFIGURATION-SET"] = "mail"
    message["X-SES-MESSAGE-TAGS"] = "campaign=spring, message=m-2"
    message.set_content("text body")
    message.add_alternative("<p>html body</p>", subtype="html")
    message.add_attachment(b"12345", maintype="image", subtype="png", filename="logo.png")
    destinations = ["ann@example.net", "hidden@example.com", "Ann <ann@example.net>", "bob@example.net"]

    email = email_from_raw("id-2", "shop@example.com", destinations, message.as_string(), {})

    assert email.to == ("ann@example.net", "carl@example.net")
    assert email.cc == ("bob@example.net",)
    assert email.bcc == ("hidden@example.com",)
    assert email.subject == "Café"
    assert email.text is not None and email.text.strip() == "text body"
    assert email.html is not None and email.html.strip() == "<p>html body</p>"
    assert email.attachments == (Attachment("logo.png", "image/png", 5),)
    assert email.configuration_set == "mail"
    assert email.tags == {"campaign": "spring", "message": "m-2"}
    assert email.recipients == ("ann@example.net", "carl@example.net", "bob@example.net", "hidden@example.com")


def test_request_tags_win_over_the_tags_header() -> None:
    raw = "From: a@example.com\nTo: b@example.net\nX-SES-MESSAGE-TAGS: k=header\n\nbody\n"

    email = email_from_raw("id", None, [], raw, {"tags": {"k": "request"}, "configurationSet": "set"})

    assert email.tags == {"k": "request"}
    assert email.configuration_set == "set"
    assert email.source == "a@example.com"


def test_the_identity_default_set_is_the_address_s_else_the_domain_s() -> None:
    identities = {"example.com": "domain-set", "vip@example.com": "vip-set", "other.org": None}

    assert identity_configuration_set("VIP <vip@example.com>", identities) == "vip-set"
    assert identity_configuration_set("shop@example.com", identities) == "domain-set"
    assert identity_configuration_set("x@other.org", identities) is None
    assert sending_identity("VIP <vip@example.com>", identities) == "vip@example.com"
    assert sending_identity("shop@Example.com", identities) == "Example.com"


@pytest.mark.parametrize(
    ("message", "structure", "platform", "payload"),
    [
        ('{"default": "d", "GCM": "{\\"a\\": 1}"}', "json", "GCM", '{"a": 1}'),
        ('{"default": "d", "GCM": "g"}', "json", "APNS", "d"),
        ("plain text", None, "GCM", "plain text"),
        ("not json", "json", "GCM", "not json"),
    ],
)
def test_push_payload_is_the_platform_entry_of_a_structured_message(
    message: str, structure: str | None, platform: str, payload: str
) -> None:
    assert push_payload(message, structure, platform) == payload


# ---------------------------------------------------------------------------------- SES events


@pytest.mark.parametrize(
    ("spelling", "event_type"),
    [
        ("bounce", "Bounce"),
        ("BOUNCE", "Bounce"),
        ("RENDERING_FAILURE", "Rendering Failure"),
        ("renderingFailure", "Rendering Failure"),
        ("Rendering Failure", "Rendering Failure"),
        ("delivery_delay", "DeliveryDelay"),
    ],
)
def test_every_spelling_of_an_event_type_is_understood(spelling: str, event_type: str) -> None:
    assert ses_event_type(spelling) == event_type


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown SES event type 'Explosion'"):
        ses_event_type("Explosion")


def test_the_mail_object_carries_the_message_its_headers_and_every_tag() -> None:
    mail = ses_mail_object(
        sent(),
        account_id="123456789012",
        region="us-east-1",
        identity="example.com",
        configuration_set="mail",
        tags={"message": "m-1"},
    )

    assert mail == {
        "timestamp": "2030-01-02T03:00:00.000Z",
        "source": "Shop <shop@example.com>",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
        "sendingAccountId": "123456789012",
        "messageId": "0100-abc",
        "destination": ["ann@example.net", "bob@example.net"],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "Shop <shop@example.com>"},
            {"name": "To", "value": "ann@example.net"},
            {"name": "Subject", "value": "Hi"},
        ],
        "commonHeaders": {
            "from": ["Shop <shop@example.com>"],
            "to": ["ann@example.net"],
            "cc": ["bob@example.net"],
            "messageId": "0100-abc",
            "subject": "Hi",
        },
        "tags": {
            "ses:source-ip": ["127.0.0.1"],
            "ses:from-domain": ["example.com"],
            "ses:caller-identity": ["localcloud"],
            "ses:configuration-set": ["mail"],
            "message": ["m-1"],
        },
    }


@pytest.mark.parametrize(
    ("event_type", "key", "fields"),
    [
        ("Send", "send", set()),
        ("Reject", "reject", {"reason"}),
        ("Bounce", "bounce", {"bounceType", "bounceSubType", "bouncedRecipients", "timestamp", "feedbackId"}),
        ("Complaint", "complaint", {"complainedRecipients", "timestamp", "feedbackId", "complaintFeedbackType"}),
        ("Delivery", "delivery", {"timestamp", "processingTimeMillis", "recipients", "smtpResponse"}),
        ("Open", "open", {"ipAddress", "timestamp", "userAgent"}),
        ("Click", "click", {"ipAddress", "timestamp", "userAgent", "link", "linkTags"}),
        ("Rendering Failure", "failure", {"errorMessage", "templateName"}),
        ("DeliveryDelay", "deliveryDelay", {"timestamp", "delayType", "expirationTime", "delayedRecipients"}),
        ("Subscription", "subscription", {"contactList", "timestamp", "source"}),
    ],
)
def test_each_event_type_has_its_object_beside_the_mail(event_type: str, key: str, fields: set[str]) -> None:
    record = ses_event_record(event_type.upper(), {"messageId": "m"}, ["ann@example.net"], {}, NOW)

    assert set(record) == {"eventType", "mail", key}
    assert record["eventType"] == event_type
    assert record["mail"] == {"messageId": "m"}
    assert fields <= set(record[key])
    if "timestamp" in fields:
        assert record[key]["timestamp"] == "2030-01-02T03:04:05.678Z"


def test_details_override_fields_and_per_recipient_ones_apply_to_each_recipient() -> None:
    record = ses_event_record(
        "Bounce",
        {},
        ["a@example.net", "b@example.net"],
        {"bounce_type": "Transient", "bounce_sub_type": "MailboxFull", "status": "4.2.2", "reportingMTA": "dsn; x"},
        NOW,
    )

    bounce = record["bounce"]
    assert (bounce["bounceType"], bounce["bounceSubType"], bounce["reportingMTA"]) == (
        "Transient",
        "MailboxFull",
        "dsn; x",
    )
    assert [(r["emailAddress"], r["status"]) for r in bounce["bouncedRecipients"]] == [
        ("a@example.net", "4.2.2"),
        ("b@example.net", "4.2.2"),
    ]
    assert "status" not in bounce


def test_a_transient_bounce_gets_a_temporary_status_by_default() -> None:
    record = ses_event_record("Bounce", {}, ["a@example.net"], {"bounce_type": "Transient"}, NOW)

    assert record["bounce"]["bouncedRecipients"][0]["status"] == "4.4.7"


def test_camel_case_keeps_names_already_in_camel_case() -> None:
    assert camel_case("bounce_sub_type") == "bounceSubType"
    assert camel_case("linkTags") == "linkTags"
    assert camel_case("link") == "link"


# ---------------------------------------------------------------------------------- printed


def test_the_printed_outbox_lists_each_kind_readably() -> None:
    text = format_outbox(
        {
            "emails": [
                {
                    **sent(
                        html="<p>Hello <b>Ann</b></p>", attachments=(Attachment("a.pdf", "application/pdf", 3),)
                    ).to_json(),
                }
            ],
            "sms": [
                {
                    "messageId": "s-1",
                    "phoneNumber": "+15555550100",
                    "message": "code 1",
                    "attributes": {"AWS.SNS.SMS.SMSType": "Transactional"},
                }
            ],
            "push": [{"messageId": "p-1", "platform": "GCM", "token": "tok", "payload": '{"a": 1}'}],
        }
    )

    assert text.splitlines() == [
        "Emails (1)",
        "  2030-01-02T03:00:00.000Z  0100-abc",
        "    Shop <shop@example.com> -> ann@example.net, bob@example.net",
        "    Subject: Hi",
        "    Configuration set: mail",
        "    Tags: message=m-1",
        "    Hello Ann",
        "    Attachment: a.pdf (application/pdf, 3 B)",
        "SMS (1)",
        "  -  +15555550100 [Transactional]",
        "    code 1",
        "Push (1)",
        "  -  GCM token tok",
        '    {"a": 1}',
    ]
