"""What the delivery feature needs: SNS -> SQS fan-in, SES resources, the outbox and SES's feedback events.

One cloud runs tests/fixtures/localcloud_messaging.yaml for the whole module; each test tells its
own messages apart by id or content.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.localcloud.__main__ import main as cli_main
from infra.localcloud.cloud import LocalCloud, LocalCloudError
from tests.e2e.localcloud.conftest import REPO, recorded_events

pytestmark = pytest.mark.timeout(180)

TEMPLATE = REPO / "tests" / "fixtures" / "localcloud_messaging.yaml"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(TEMPLATE, stack_name=f"messaging-{uuid.uuid4().hex[:8]}", retry_delay_s=0) as started:
        yield started


def topic_arn(cloud: LocalCloud, logical_id: str) -> str:
    return f"arn:aws:sns:{cloud.region}:{cloud.model.account_id}:{cloud.physical_name(logical_id)}"


def consumed_records(cloud: LocalCloud, queue_logical_id: str) -> list[dict[str, Any]]:
    """The SQS records the Consumer function received from one of its queues."""
    queue_arn = f"arn:aws:sqs:{cloud.region}:{cloud.model.account_id}:{cloud.physical_name(queue_logical_id)}"
    return [
        record
        for event in recorded_events(cloud)
        for record in event["Records"]
        if record["eventSourceARN"] == queue_arn
    ]


def feedback_records(cloud: LocalCloud, message_id: str) -> list[dict[str, Any]]:
    """The SES event records that reached the Consumer through FeedbackTopic -> FeedbackQueue."""
    records = [json.loads(json.loads(record["body"])["Message"]) for record in consumed_records(cloud, "FeedbackQueue")]
    return [record for record in records if record["mail"]["messageId"] == message_id]


def send(cloud: LocalCloud, request: dict[str, Any]) -> dict[str, Any]:
    """Have the Mailer function send, as a platform function would; its answer holds the message ids."""
    result = cloud.invoke("Mailer", request)
    assert result.ok, result.error
    answer: dict[str, Any] = result.payload
    return answer


def simple_email(cloud: LocalCloud, subject: str, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "FromEmailAddress": "Shop <shop@example.com>",
        "Destination": {"ToAddresses": ["ann@example.net"], "CcAddresses": ["bob@example.net"]},
        "ReplyToAddresses": ["help@example.com"],
        "Content": {
            "Simple": {
                "Subject": {"Data": subject},
                "Body": {"Text": {"Data": "Hello Ann"}, "Html": {"Data": "<p>Hello <b>Ann</b></p>"}},
                "Headers": [{"Name": "List-Unsubscribe", "Value": "<https://example.com/u/1>"}],
            }
        },
        "ConfigurationSetName": cloud.outputs["ConfigurationSetName"],
        "EmailTags": [{"Name": "message", "Value": "msg-1"}, {"Name": "rule", "Value": "welcome"}],
    }
    request.update(extra)
    return request


# ---------------------------------------------------------------------------------- SNS -> SQS


def test_a_publish_reaches_the_consumer_in_an_sns_envelope(cloud: LocalCloud) -> None:
    sns = cloud.client("sns")
    marker = uuid.uuid4().hex
    published = sns.publish(
        TopicArn=topic_arn(cloud, "NotificationsTopic"),
        Message=json.dumps({"marker": marker}),
        Subject="greeting",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "other"}},
    )
    cloud.wait_idle()

    bodies = [json.loads(record["body"]) for record in consumed_records(cloud, "EnvelopeQueue")]
    (envelope,) = [body for body in bodies if marker in body["Message"]]
    assert envelope["Type"] == "Notification"
    assert envelope["MessageId"] == published["MessageId"]
    assert envelope["TopicArn"] == topic_arn(cloud, "NotificationsTopic")
    assert envelope["Subject"] == "greeting"
    assert json.loads(envelope["Message"]) == {"marker": marker}
    assert envelope["MessageAttributes"] == {"kind": {"Type": "String", "Value": "other"}}
    # The raw subscription's FilterPolicy wants kind=keep: this message never reached its queue.
    assert not [record for record in consumed_records(cloud, "RawQueue") if marker in record["body"]]


def test_raw_message_delivery_hands_over_the_bare_message_that_passes_the_filter_policy(cloud: LocalCloud) -> None:
    marker = uuid.uuid4().hex
    cloud.client("sns").publish(
        TopicArn=topic_arn(cloud, "NotificationsTopic"),
        Message=f"keep {marker}",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "keep"}},
    )
    cloud.wait_idle()

    (record,) = [record for record in consumed_records(cloud, "RawQueue") if marker in record["body"]]
    assert record["body"] == f"keep {marker}"
    assert record["messageAttributes"]["kind"]["stringValue"] == "keep"
    # The envelope subscription has no filter: it got the same message, wrapped.
    assert [r for r in consumed_records(cloud, "EnvelopeQueue") if marker in json.loads(r["body"])["Message"]]


# ---------------------------------------------------------------------------------- SES resources


def test_the_configuration_sets_identities_and_event_destinations_exist_in_moto(cloud: LocalCloud) -> None:
    sesv2, ses = cloud.client("sesv2"), cloud.client("ses")
    name = cloud.outputs["ConfigurationSetName"]

    assert name == f"{cloud.stack_name}-mail"  # Ref of a configuration set is its name
    assert cloud.outputs["NewsConfigurationSetName"] == f"{cloud.stack_name}-NewsConfigurationSet"
    assert cloud.outputs["SenderIdentity"] == "example.com"  # Ref of an identity is the identity
    assert sesv2.get_configuration_set(ConfigurationSetName=name)["ConfigurationSetName"] == name
    assert sesv2.get_email_identity(EmailIdentity="example.com")["IdentityType"] == "DOMAIN"
    assert sesv2.get_email_identity(EmailIdentity="news@example.org")["IdentityType"] == "EMAIL_ADDRESS"
    (destination,) = ses.describe_configuration_set(
        ConfigurationSetName=name, ConfigurationSetAttributeNames=["eventDestinations"]
    )["EventDestinations"]
    assert destination["Name"] == "feedback"
    assert destination["SNSDestination"]["TopicARN"] == topic_arn(cloud, "FeedbackTopic")
    assert "renderingFailure" in destination["MatchingEventTypes"]
    assert cloud.function("Mailer").environment["DKIM_NAME"].endswith("._domainkey.example.com")
    assert cloud.model.ignored["FanInQueuePolicy"] == "AWS::SQS::QueuePolicy"


def test_a_send_naming_a_configuration_set_that_does_not_exist_is_refused_as_on_aws(cloud: LocalCloud) -> None:
    result = cloud.invoke("Mailer", {"email": simple_email(cloud, "typo", ConfigurationSetName="no-such-set")})

    assert result.error is not None
    assert "NotFoundException" in result.error["errorMessage"]
    assert "no-such-set" in result.error["errorMessage"]


def test_a_sender_outside_the_verified_identities_is_refused(cloud: LocalCloud) -> None:
    with pytest.raises(ClientError, match="MessageRejected"):
        cloud.client("sesv2").send_email(**simple_email(cloud, "spoof", FromEmailAddress="ceo@elsewhere.org"))


# ---------------------------------------------------------------------------------- the outbox


def test_a_simple_email_is_read_back_whole_with_its_tags_and_configuration_set(cloud: LocalCloud) -> None:
    message_id = send(cloud, {"email": simple_email(cloud, "Welcome")})["email"]

    (sent,) = [email for email in cloud.sent_emails() if email.message_id == message_id]
    assert sent.source == "Shop <shop@example.com>"
    assert sent.to == ("ann@example.net",)
    assert sent.cc == ("bob@example.net",)
    assert sent.recipients == ("ann@example.net", "bob@example.net")
    assert sent.reply_to == ("help@example.com",)
    assert sent.subject == "Welcome"
    # moto keeps only the HTML body of a message that has both; the outbox keeps both.
    assert sent.text == "Hello Ann"
    assert sent.html == "<p>Hello <b>Ann</b></p>"
    assert sent.headers["List-Unsubscribe"] == "<https://example.com/u/1>"
    assert sent.headers["Subject"] == "Welcome"
    assert sent.tags == {"message": "msg-1", "rule": "welcome"}
    assert sent.configuration_set == cloud.outputs["ConfigurationSetName"]
    assert sent.sent_at is not None


def test_a_raw_email_is_parsed_into_parts_headers_and_attachments(cloud: LocalCloud) -> None:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = "Ann <ann@example.net>"
    message["Subject"] = "Your receipt"
    message["X-Campaign"] = "spring"
    message.set_content("Thanks for your order")
    message.add_alternative("<p>Thanks for your <i>order</i></p>", subtype="html")
    message.add_attachment(b"%PDF-1.4 receipt", maintype="application", subtype="pdf", filename="receipt.pdf")
    message_id = cloud.client("sesv2").send_email(
        FromEmailAddress="shop@example.com",
        Destination={"ToAddresses": ["ann@example.net"], "BccAddresses": ["audit@example.com"]},
        Content={"Raw": {"Data": message.as_bytes()}},
        ConfigurationSetName=cloud.outputs["ConfigurationSetName"],
        EmailTags=[{"Name": "message", "Value": "msg-raw"}],
    )["MessageId"]

    (sent,) = [email for email in cloud.sent_emails() if email.message_id == message_id]
    assert sent.to == ("ann@example.net",)
    assert sent.bcc == ("audit@example.com",)
    assert sent.subject == "Your receipt"
    assert sent.text is not None and sent.text.strip() == "Thanks for your order"
    assert sent.html is not None and "<i>order</i>" in sent.html
    assert sent.headers["X-Campaign"] == "spring"
    assert [(a.filename, a.content_type, a.size) for a in sent.attachments] == [
        ("receipt.pdf", "application/pdf", len(b"%PDF-1.4 receipt"))
    ]
    assert sent.tags == {"message": "msg-raw"}
    assert sent.raw is not None and "receipt.pdf" in sent.raw


def test_sms_and_push_are_read_back_with_their_attributes_and_platform_payload(cloud: LocalCloud) -> None:
    sns = cloud.client("sns")
    application = sns.create_platform_application(
        Name=f"app-{uuid.uuid4().hex[:6]}", Platform="GCM", Attributes={"PlatformCredential": "local"}
    )["PlatformApplicationArn"]
    endpoint = send(cloud, {"push_endpoint": {"application": application, "token": f"tok-{uuid.uuid4().hex}"}})
    structured = json.dumps({"default": "fallback", "GCM": json.dumps({"notification": {"title": "Sale"}})})
    answer = send(
        cloud,
        {
            "sms": {
                "PhoneNumber": "+15555550100",
                "Message": "Your code is 1234",
                "MessageAttributes": {
                    "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
                    "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "Midstage"},
                },
            },
            "push": {"TargetArn": endpoint["endpoint"], "Message": structured, "MessageStructure": "json"},
        },
    )

    (sms,) = [message for message in cloud.sent_sms() if message.message_id == answer["sms"]]
    assert (sms.phone_number, sms.message, sms.sms_type) == ("+15555550100", "Your code is 1234", "Transactional")
    assert sms.attributes["AWS.SNS.SMS.SenderID"] == "Midstage"
    (push,) = [message for message in cloud.sent_push() if message.message_id == answer["push"]]
    assert push.endpoint_arn == endpoint["endpoint"]
    assert push.token.startswith("tok-")
    assert push.platform == "GCM"
    assert push.application_arn == application
    assert push.message == structured
    assert json.loads(push.payload) == {"notification": {"title": "Sale"}}  # the GCM entry, as FCM gets it


# ---------------------------------------------------------------------------------- SES events


def test_a_simulated_bounce_runs_the_feedback_path_with_the_original_tags(cloud: LocalCloud) -> None:
    message_id = send(cloud, {"email": simple_email(cloud, "Bounce me")})["email"]

    published = cloud.simulate_ses_event("Bounce", message_id, "ann@example.net")
    cloud.wait_idle()

    assert len(published) == 1
    (record,) = feedback_records(cloud, message_id)
    assert record["eventType"] == "Bounce"
    mail = record["mail"]
    assert mail["source"] == "Shop <shop@example.com>"
    assert mail["destination"] == ["ann@example.net", "bob@example.net"]
    assert mail["sourceArn"] == f"arn:aws:ses:{cloud.region}:{cloud.model.account_id}:identity/example.com"
    assert mail["tags"]["message"] == ["msg-1"]
    assert mail["tags"]["rule"] == ["welcome"]
    assert mail["tags"]["ses:configuration-set"] == [cloud.outputs["ConfigurationSetName"]]
    assert mail["commonHeaders"]["subject"] == "Bounce me"
    bounce = record["bounce"]
    assert bounce["bounceType"] == "Permanent"
    assert bounce["bouncedRecipients"] == [
        {
            "emailAddress": "ann@example.net",
            "action": "failed",
            "status": "5.1.1",
            "diagnosticCode": "smtp; 550 5.1.1 user unknown",
        }
    ]


def test_event_details_override_the_defaults_and_every_recipient_is_the_default(cloud: LocalCloud) -> None:
    message_id = send(cloud, {"email": simple_email(cloud, "Click me")})["email"]

    cloud.simulate_ses_event("click", message_id, link="https://example.com/sale", link_tags={"cta": ["hero"]})
    cloud.simulate_ses_event("Complaint", message_id, complaint_feedback_type="not-spam")
    cloud.wait_idle()

    records = {record["eventType"]: record for record in feedback_records(cloud, message_id)}
    assert records["Click"]["click"]["link"] == "https://example.com/sale"
    assert records["Click"]["click"]["linkTags"] == {"cta": ["hero"]}
    complaint = records["Complaint"]["complaint"]
    assert complaint["complaintFeedbackType"] == "not-spam"
    assert [r["emailAddress"] for r in complaint["complainedRecipients"]] == ["ann@example.net", "bob@example.net"]


def test_the_identity_default_set_applies_and_only_its_matching_event_types_publish(cloud: LocalCloud) -> None:
    request = simple_email(cloud, "News")
    request.pop("ConfigurationSetName")
    request["FromEmailAddress"] = "news@example.org"
    message_id = send(cloud, {"email": request})["email"]

    (sent,) = [email for email in cloud.sent_emails() if email.message_id == message_id]
    assert sent.configuration_set == cloud.outputs["NewsConfigurationSetName"]
    # The news set's only destination takes bounces: an open is published nowhere, as on AWS.
    assert cloud.simulate_ses_event("Open", message_id) == []
    assert len(cloud.simulate_ses_event("Bounce", message_id, bounce_type="Transient")) == 1
    cloud.wait_idle()
    (record,) = feedback_records(cloud, message_id)
    assert record["bounce"]["bounceType"] == "Transient"
    assert record["bounce"]["bouncedRecipients"][0]["status"].startswith("4.")
    assert record["mail"]["sourceArn"].endswith(":identity/news@example.org")


def test_events_of_mail_without_a_configuration_set_or_sent_elsewhere_are_explained(cloud: LocalCloud) -> None:
    request = simple_email(cloud, "No set")
    request.pop("ConfigurationSetName")
    message_id = send(cloud, {"email": request})["email"]

    with pytest.raises(LocalCloudError, match="without a configuration set"):
        cloud.simulate_ses_event("Delivery", message_id)
    with pytest.raises(LocalCloudError, match="name its configuration set"):
        cloud.simulate_ses_event("Delivery", "not-a-sent-message")
    with pytest.raises(ValueError, match="unknown SES event type"):
        cloud.simulate_ses_event("Explosion", message_id)

    # A message sent elsewhere (another process, a fixture) can still be described.
    foreign = f"foreign-{uuid.uuid4().hex}"
    published = cloud.simulate_ses_event(
        "Delivery",
        foreign,
        "zoe@example.net",
        configuration_set=cloud.outputs["ConfigurationSetName"],
        tags={"message": "msg-9"},
    )
    cloud.wait_idle()
    assert len(published) == 1
    (record,) = feedback_records(cloud, foreign)
    assert record["delivery"]["recipients"] == ["zoe@example.net"]
    assert record["mail"]["tags"]["message"] == ["msg-9"]


# ---------------------------------------------------------------------------------- over HTTP and the CLI


def test_the_outbox_and_ses_events_over_http_and_the_cli(cloud: LocalCloud) -> None:
    message_id = send(cloud, {"email": simple_email(cloud, "Over HTTP")})["email"]

    with urllib.request.urlopen(f"{cloud.api_url}/_localcloud/outbox", timeout=10) as response:
        outbox = json.loads(response.read())
    (email,) = [email for email in outbox["emails"] if email["messageId"] == message_id]
    assert email["subject"] == "Over HTTP"
    assert email["tags"] == {"message": "msg-1", "rule": "welcome"}
    assert set(outbox) == {"emails", "sms", "push"}

    printed = io.StringIO()
    with redirect_stdout(printed):
        assert cli_main(["outbox", "--url", cloud.api_url]) == 0
    assert message_id in printed.getvalue()
    assert "Subject: Over HTTP" in printed.getvalue()
    assert "Tags: message=msg-1, rule=welcome" in printed.getvalue()

    printed = io.StringIO()
    with redirect_stdout(printed):
        code = cli_main(
            ["ses-event", "Delivery", message_id, "--url", cloud.api_url, "--detail", "smtp_response=250 ok"]
        )
    assert code == 0, printed.getvalue()
    assert "published 1 notification(s)" in printed.getvalue()
    cloud.wait_idle()
    (record,) = feedback_records(cloud, message_id)
    assert record["delivery"]["smtpResponse"] == "250 ok"

    refused = urllib.request.Request(
        f"{cloud.api_url}/_localcloud/ses-events",
        data=json.dumps({"eventType": "Bounce", "messageId": "unknown"}).encode(),
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(refused, timeout=10)
    assert answer.value.code == 404


def test_a_template_route_under_the_control_prefix_is_refused_at_start_up(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        f"""
Transform: AWS::Serverless-2016-10-31
Resources:
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {REPO / "tests" / "fixtures" / "functions" / "echo"}
      Handler: handler.lambda_handler
      Runtime: python3.12
      Events:
        Hidden:
          Type: HttpApi
          Properties: {{Method: GET, Path: /_localcloud/outbox}}
""",
        encoding="utf-8",
    )

    with pytest.raises(Exception, match=r"GET /_localcloud/outbox is hidden by the local cloud's control"):
        LocalCloud(template, stack_name=f"collide-{uuid.uuid4().hex[:6]}").start()
