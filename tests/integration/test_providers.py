"""Delivery providers against moto's SES and SNS, and webhooks against a real local HTTP server.

What moto does not keep (SES tags, SMS attributes) is read from the request botocore was about to send;
error codes moto cannot produce are pinned with botocore's Stubber.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from midstage.adapters import aws
from midstage.adapters.providers import (
    CONFIGURATION,
    PERMANENT,
    RETRYABLE,
    EmailSender,
    OutboundEmail,
    ProviderError,
    PushSender,
    SmsSender,
    WebhookSender,
    mime_message,
    ses_tags,
    sign,
    verify_signature,
)
from midstage.adapters.providers.errors import SEND_ATTEMPTS

REGION = "us-east-1"
UNSUBSCRIBE = (
    "<https://t.example.com/unsubscribe/" + "a1b2c3d4" * 12 + "?list=news>, <mailto:unsub@example.com?subject=u>"
)
ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        aws._client.cache_clear()
        yield
        aws._client.cache_clear()


def captured(client: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every `operation` call, as botocore is about to send them."""
    calls: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **_: Any) -> None:
        calls.append(params)

    client.meta.events.register(f"provide-client-params.{client.meta.service_model.service_name}.{operation}", keep)
    return calls


def news(**overrides: Any) -> OutboundEmail:
    fields: dict[str, Any] = {
        "sender": "Midstage News <news@example.com>",
        "to": "Ann Example <Ann@Example.org>",
        "subject": "Prix spéciaux — cette semaine",
        "html": '<p>Bonjour Ann, <a href="https://example.com/s">voir</a> ✓</p>',
        "text": "Bonjour Ann, voir https://example.com/s ✓",
        "headers": {"List-Unsubscribe": UNSUBSCRIBE, "List-Unsubscribe-Post": ONE_CLICK},
        "configuration_set": "midstage-events",
        "tags": {"midstage-message": "01JD5Q3ZK8M4", "campaign": "black friday/2026"},
    }
    fields.update(overrides)
    return OutboundEmail(**fields)


def sent_mime(index: int = -1) -> EmailMessage:
    raw = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages[index].raw_data
    parsed = message_from_bytes(raw.encode(), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body_of(part: Any) -> str:
    """A part's decoded text; the wire has CRLF line ends, which the parser leaves in place."""
    text: str = part.get_content()
    return text.replace("\r\n", "\n").rstrip("\n")


def stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    return client, Stubber(client)


# ------------------------------------------------------------------------------------------------ email


def test_email_goes_out_as_raw_mime_with_one_click_unsubscribe(cloud: None) -> None:
    ses = boto3.client("sesv2")
    ses.create_email_identity(EmailIdentity="example.com")
    requests = captured(ses, "SendEmail")

    provider_id = EmailSender(ses).send(news())

    sent = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    assert len(sent) == 1 and sent[0].id == provider_id
    mime = sent_mime()
    assert mime["Subject"] == "Prix spéciaux — cette semaine"
    assert mime["From"] == "Midstage News <news@example.com>"
    assert mime["To"] == "Ann Example <Ann@Example.org>"
    assert mime["List-Unsubscribe"] == UNSUBSCRIBE
    assert mime["List-Unsubscribe-Post"] == ONE_CLICK
    assert mime["Date"]
    assert mime.get_content_type() == "multipart/alternative"
    text, html = mime.iter_parts()
    assert text.get_content_type() == "text/plain" and text.get_content_charset() == "utf-8"
    assert body_of(text) == "Bonjour Ann, voir https://example.com/s ✓"
    assert html.get_content_type() == "text/html"
    assert body_of(html) == '<p>Bonjour Ann, <a href="https://example.com/s">voir</a> ✓</p>'
    # 7-bit on the wire, lines within RFC 5322's limit.
    raw = sent[0].raw_data.encode()
    assert raw.isascii() and max(len(line) for line in raw.split(b"\r\n")) <= 998

    (request,) = requests
    assert request["FromEmailAddress"] == "Midstage News <news@example.com>"
    assert request["Destination"] == {"ToAddresses": ["Ann Example <Ann@Example.org>"]}
    assert request["ConfigurationSetName"] == "midstage-events"
    assert request["EmailTags"] == [
        {"Name": "midstage-message", "Value": "01JD5Q3ZK8M4"},
        {"Name": "campaign", "Value": "black_friday_2026"},
    ]
    assert set(request["Content"]) == {"Raw"}


def test_text_only_and_html_only_emails_are_single_part(cloud: None) -> None:
    ses = boto3.client("sesv2")
    ses.create_email_identity(EmailIdentity="news@example.com")
    sender = EmailSender(ses)
    sender.send(news(html=None, configuration_set=None, tags={}))
    assert sent_mime().get_content_type() == "text/plain"
    sender.send(news(text=None, reply_to="Help <help@example.com>"))
    mime = sent_mime()
    assert mime.get_content_type() == "text/html"
    assert mime["Reply-To"] == "Help <help@example.com>"
    with pytest.raises(ProviderError) as refused:
        sender.send(news(text=None, html=None))
    assert refused.value.kind == PERMANENT


def test_non_ascii_display_name_is_encoded_for_ses(cloud: None) -> None:
    ses = boto3.client("sesv2")
    ses.create_email_identity(EmailIdentity="example.com")
    requests = captured(ses, "SendEmail")
    EmailSender(ses).send(news(sender="Boutique Élan <news@example.com>"))
    sender = requests[0]["FromEmailAddress"]
    assert sender.isascii() and sender.endswith(" <news@example.com>")  # RFC 2047, as SES requires
    assert str(make_header(decode_header(sender))) == "Boutique Élan <news@example.com>"
    assert sent_mime()["From"] == "Boutique Élan <news@example.com>"


def test_unverified_sender_is_a_configuration_error(cloud: None) -> None:
    with pytest.raises(ProviderError) as refused:
        EmailSender().send(news())  # the lazily created default client, on moto
    assert refused.value.kind == CONFIGURATION
    assert refused.value.code == "MessageRejected"
    assert "verify the sender identity news@example.com" in refused.value.reason
    assert not ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages


@pytest.mark.parametrize(
    ("failed", "expected"),
    [
        ("news@example.com", ["verify the sender identity news@example.com", "region us-east-1"]),
        ("example.com", ["verify the sender identity news@example.com"]),
        ("ann@example.org", ["recipient ann@example.org is not verified", "sandbox", "production access"]),
    ],
)
def test_ses_says_which_identity_must_be_verified(failed: str, expected: list[str]) -> None:
    client, stub = stubbed("sesv2")
    stub.add_client_error(
        "send_email",
        service_error_code="MessageRejected",
        service_message=f"Email address is not verified. The following identities failed the check in region "
        f"US-EAST-1: {failed}",
        http_status_code=400,
    )
    with stub, pytest.raises(ProviderError) as refused:
        EmailSender(client).send(news())
    assert refused.value.kind == CONFIGURATION
    for words in expected:
        assert words in refused.value.reason


@pytest.mark.parametrize(
    ("code", "status", "message", "kind"),
    [
        ("TooManyRequestsException", 429, "Too many requests", RETRYABLE),
        ("LimitExceededException", 400, "Maximum sending rate exceeded.", RETRYABLE),
        ("Throttling", 400, "Rate exceeded", RETRYABLE),
        ("InternalFailure", 500, "Internal failure", RETRYABLE),
        ("ServiceUnavailable", 503, "Service unavailable", RETRYABLE),
        ("SomethingNew", 502, "Bad gateway", RETRYABLE),
        ("AccountSuspendedException", 400, "Account suspended", CONFIGURATION),
        ("SendingPausedException", 400, "Sending paused for this configuration set", CONFIGURATION),
        ("MailFromDomainNotVerifiedException", 400, "MAIL FROM domain not verified", CONFIGURATION),
        ("NotFoundException", 404, "Configuration set <midstage-events> does not exist.", CONFIGURATION),
        ("BadRequestException", 400, "Illegal address", PERMANENT),
        ("MessageRejected", 400, "Transaction failed: Illegal header 'X'.", PERMANENT),
    ],
)
def test_ses_error_codes_are_classified(code: str, status: int, message: str, kind: str) -> None:
    client, stub = stubbed("sesv2")
    # SES did not take a throttled or 503 request: it is tried again (SEND_ATTEMPTS in all). Any
    # other server error may come after SES took it: not tried again, and its outcome unknown.
    refused_for_now = code in ("Throttling", "TooManyRequestsException", "LimitExceededException", "ServiceUnavailable")
    for _ in range(SEND_ATTEMPTS if refused_for_now else 1):
        stub.add_client_error("send_email", service_error_code=code, service_message=message, http_status_code=status)
    with stub, pytest.raises(ProviderError) as failed:
        EmailSender(client).send(news())
    stub.assert_no_pending_responses()
    ambiguous = kind == RETRYABLE and not refused_for_now
    assert (failed.value.kind, failed.value.code, failed.value.ambiguous) == (kind, code, ambiguous)
    assert message.split()[0] in failed.value.reason


def test_a_throttled_send_that_then_gets_through_is_sent_once() -> None:
    client, stub = stubbed("sesv2")
    stub.add_client_error("send_email", service_error_code="Throttling", http_status_code=400)
    stub.add_response("send_email", {"MessageId": "ses-after-a-throttle"})
    with stub:
        assert EmailSender(client).send(news()) == "ses-after-a-throttle"
    stub.assert_no_pending_responses()


@pytest.fixture
def silent_ses() -> Iterator[tuple[str, list[str]]]:
    """An endpoint that reads each request whole and answers after the client stopped waiting:
    the provider got the message, the sender never hears so."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            requests.append(self.path)
            time.sleep(1.5)
            body = b'{"MessageId": "too-late"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_a_send_whose_answer_is_lost_is_not_retried_and_is_ambiguous(silent_ses: tuple[str, list[str]]) -> None:
    """With the sending clients' own configuration (botocore retries a read timeout by default),
    a timed-out SendEmail reached SES once, and the error says it may have been taken."""
    endpoint, requests = silent_ses
    client = boto3.client(
        "sesv2",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=aws._SEND_CONFIG.merge(Config(read_timeout=0.5)),
    )
    with pytest.raises(ProviderError) as failed:
        EmailSender(client).send(news())
    assert (failed.value.kind, failed.value.ambiguous) == (RETRYABLE, True)
    assert "may have received" in failed.value.reason
    time.sleep(0.2)
    assert len(requests) == 1


def test_unreachable_ses_is_retryable() -> None:
    client = boto3.client(
        "sesv2",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(ProviderError) as failed:
        EmailSender(client).send(news())
    assert failed.value.kind == RETRYABLE


@pytest.mark.parametrize(
    "hostile",
    [
        {"subject": "Hello\r\nBcc: victim@example.net"},
        {"subject": "Hello\nX-Injected: 1"},
        {"subject": "Hello\x00"},
        {"headers": {"List-Unsubscribe": "<https://x.example.com>\r\nBcc: victim@example.net"}},
        {"headers": {"X-Note": "a\rb"}},
        {"headers": {"Bcc": "victim@example.net"}},
        {"headers": {"content-type": "text/plain"}},
        {"headers": {"X-Bad Name": "v"}},
        {"headers": {"X-Bad:Name": "v"}},
        {"headers": {"X-Bad\n": "v"}},
        {"to": "ann@example.org\r\nBcc: victim@example.net"},
        {"to": "ann@example.org, victim@example.net"},
        {"to": "ann@example.org <victim@example.net>"},
        {"to": "not an address"},
        {"reply_to": "help@example.com\nBcc: victim@example.net"},
    ],
)
def test_header_injection_is_refused_before_anything_is_sent(cloud: None, hostile: dict[str, Any]) -> None:
    ses = boto3.client("sesv2")
    ses.create_email_identity(EmailIdentity="example.com")
    with pytest.raises(ProviderError) as refused:
        EmailSender(ses).send(news(**hostile))
    assert refused.value.kind == PERMANENT
    assert not ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages


def test_a_bad_sender_address_is_configuration() -> None:
    with pytest.raises(ProviderError) as refused:
        mime_message(news(sender="news@example.com\r\nBcc: x@example.net"))
    assert refused.value.kind == CONFIGURATION


def test_ses_tags_keep_only_what_ses_accepts() -> None:
    assert ses_tags({"midstage-message": "01JD5Q3ZK8M4", "a b": "x.y@z", "t": "", "": "dropped", "l": "v" * 300}) == [
        {"Name": "midstage-message", "Value": "01JD5Q3ZK8M4"},
        {"Name": "a_b", "Value": "x_y_z"},
        {"Name": "t", "Value": "_"},
        {"Name": "l", "Value": "v" * 256},
    ]


# -------------------------------------------------------------------------------------------------- SMS


def test_sms_is_published_with_its_type_and_sender_id(cloud: None) -> None:
    sns = boto3.client("sns")
    requests = captured(sns, "Publish")
    message_id = SmsSender(sns).send("+447700900123", "Your code is 123456", "Transactional", sender_id="Midstage")

    assert sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages[message_id] == ("+447700900123", "Your code is 123456")
    (request,) = requests
    assert request["PhoneNumber"] == "+447700900123"
    assert request["MessageAttributes"] == {
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
        "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "Midstage"},
    }


def test_promotional_sms_from_an_origination_number(cloud: None) -> None:
    sns = boto3.client("sns")
    requests = captured(sns, "Publish")
    message_id = SmsSender(sns).send("+15555550100", "20% off today", "Promotional", origination_number="+15555550199")
    assert sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages[message_id] == ("+15555550100", "20% off today")
    assert requests[0]["MessageAttributes"] == {
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Promotional"},
        "AWS.MM.SMS.OriginationNumber": {"DataType": "String", "StringValue": "+15555550199"},
    }


@pytest.mark.parametrize(
    "phone", ["07700900123", "+07700900123", "+1555", "+1 555 555 0100", "+15555550100\n", "+1555555010012345", ""]
)
def test_a_phone_number_that_is_not_e164_is_refused(cloud: None, phone: str) -> None:
    with pytest.raises(ProviderError) as refused:
        SmsSender(boto3.client("sns")).send(phone, "hi", "Transactional")
    assert refused.value.kind == PERMANENT
    assert "not an E.164 phone number" in refused.value.reason
    assert not sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages


def test_sms_refusals_before_the_call(cloud: None) -> None:
    sender = SmsSender(boto3.client("sns"))
    with pytest.raises(ProviderError) as bad_sender:
        sender.send("+447700900123", "hi", "Transactional", sender_id="Midstage Ltd!")
    assert bad_sender.value.kind == CONFIGURATION
    with pytest.raises(ProviderError) as too_long:
        sender.send("+447700900123", "é" * 801, "Transactional")
    assert too_long.value.kind == PERMANENT
    with pytest.raises(ValueError, match="sms_type"):
        sender.send("+447700900123", "hi", "Urgent")


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("Throttled", 400, RETRYABLE),
        ("InternalError", 500, RETRYABLE),
        ("InvalidParameter", 400, PERMANENT),
        ("AuthorizationError", 403, CONFIGURATION),
        ("KMSDisabled", 400, CONFIGURATION),
    ],
)
def test_sns_error_codes_are_classified(code: str, status: int, kind: str) -> None:
    client, stub = stubbed("sns")
    for _ in range(SEND_ATTEMPTS if code == "Throttled" else 1):
        stub.add_client_error("publish", service_error_code=code, service_message="x", http_status_code=status)
    with stub, pytest.raises(ProviderError) as failed:
        SmsSender(client).send("+447700900123", "hi", "Transactional")
    stub.assert_no_pending_responses()
    assert (failed.value.kind, failed.value.code, failed.value.ambiguous) == (kind, code, code == "InternalError")


# ------------------------------------------------------------------------------------------------- push


def applications(sns: Any) -> dict[str, str]:
    ios = sns.create_platform_application(Name="midstage-ios", Platform="APNS", Attributes={})
    android = sns.create_platform_application(Name="midstage-android", Platform="GCM", Attributes={})
    return {"ios": ios["PlatformApplicationArn"], "android": android["PlatformApplicationArn"]}


def endpoint_messages(arn: str) -> list[dict[str, Any]]:
    endpoint = sns_backends[DEFAULT_ACCOUNT_ID][REGION].platform_endpoints[arn]
    return [json.loads(message) for message in endpoint.messages.values()]


def test_push_to_ios_and_android(cloud: None) -> None:
    sns = boto3.client("sns")
    push = PushSender(applications(sns), sns)

    push.send("ios", "apns-token-1", "Your order shipped", "Arriving Tuesday", {"order": "o-1", "n": 2})
    push.send("android", "fcm-token-1", "Your order shipped", "Arriving Tuesday", {"order": "o-1", "n": 2})

    (ios,) = endpoint_messages(push.endpoint_for("ios", "apns-token-1"))
    assert set(ios) == {"default", "APNS"}
    assert ios["default"] == "Arriving Tuesday"
    assert json.loads(ios["APNS"]) == {
        "aps": {"alert": {"title": "Your order shipped", "body": "Arriving Tuesday"}},
        "order": "o-1",
        "n": 2,
    }
    (android,) = endpoint_messages(push.endpoint_for("android", "fcm-token-1"))
    assert set(android) == {"default", "GCM"}
    assert json.loads(android["GCM"]) == {
        "notification": {"title": "Your order shipped", "body": "Arriving Tuesday"},
        "data": {"order": "o-1", "n": "2"},  # FCM data values are strings
    }


def test_an_application_arn_without_a_platform_gets_every_payload() -> None:
    push = PushSender({"ios": "arn:aws:sns:us-east-1:123456789012:app/custom"})
    assert set(json.loads(push.payload("ios", "t", "b"))) == {"default", "APNS", "APNS_SANDBOX", "GCM"}


def test_endpoint_for_is_idempotent_for_a_token(cloud: None) -> None:
    sns = boto3.client("sns")
    push = PushSender(applications(sns), sns)
    first = push.endpoint_for("ios", "apns-token-1")
    assert PushSender(push.applications, sns).endpoint_for("ios", "apns-token-1") == first
    assert len(sns_backends[DEFAULT_ACCOUNT_ID][REGION].platform_endpoints) == 1


def test_a_disabled_endpoint_means_the_token_is_dead_until_it_registers_again(cloud: None) -> None:
    sns = boto3.client("sns")
    push = PushSender(applications(sns), sns)
    arn = push.endpoint_for("ios", "apns-token-1")
    sns.set_endpoint_attributes(EndpointArn=arn, Attributes={"Enabled": "false"})  # APNs said: unregistered

    for sender in (push, PushSender(push.applications, sns)):  # with and without the endpoint cached
        with pytest.raises(ProviderError) as dead:
            sender.send("ios", "apns-token-1", "t", "b")
        assert (dead.value.kind, dead.value.code) == (PERMANENT, "EndpointDisabled")
        assert "token is no longer valid" in dead.value.reason
    assert sns.get_endpoint_attributes(EndpointArn=arn)["Attributes"]["Enabled"] == "false"

    assert push.endpoint_for("ios", "apns-token-1") == arn  # the app registered the token again
    assert sns.get_endpoint_attributes(EndpointArn=arn)["Attributes"]["Enabled"] == "true"
    push.send("ios", "apns-token-1", "t", "b")
    assert len(endpoint_messages(arn)) == 1


def test_push_configuration_problems(cloud: None) -> None:
    sns = boto3.client("sns")
    apps = applications(sns)
    with pytest.raises(ProviderError) as missing:
        PushSender({"ios": apps["ios"]}, sns).send("android", "fcm-token-1", "t", "b")
    assert missing.value.kind == CONFIGURATION and "android" in missing.value.reason

    sns.delete_platform_application(PlatformApplicationArn=apps["android"])
    with pytest.raises(ProviderError) as deleted:
        PushSender(apps, sns).endpoint_for("android", "fcm-token-1")
    assert deleted.value.kind == CONFIGURATION

    with pytest.raises(ProviderError) as unsupported:
        PushSender({"kindle": "arn:aws:sns:us-east-1:123456789012:app/ADM/k"}, sns).send("kindle", "t", "t", "b")
    assert unsupported.value.kind == CONFIGURATION


def test_push_payload_refusals(cloud: None) -> None:
    sns = boto3.client("sns")
    push = PushSender(applications(sns), sns)
    for data in ({"aps": {"badge": 1}}, {"blob": "x" * 5000}):
        with pytest.raises(ProviderError) as refused:
            push.send("ios", "apns-token-1", "t", "b", data)
        assert refused.value.kind == PERMANENT
    for token in ("", " padded", "tok\nen"):
        with pytest.raises(ProviderError) as bad_token:
            push.send("ios", token, "t", "b")
        assert bad_token.value.kind == PERMANENT
    assert not sns_backends[DEFAULT_ACCOUNT_ID][REGION].platform_endpoints


# --------------------------------------------------------------------------------------------- webhooks


class Received:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.requests.append((self.path, dict(self.headers.items()), body))
            if self.path == "/slow":
                time.sleep(1.0)
            status = {"/ok": 200, "/accepted": 202, "/redirect": 302, "/slow": 200}.get(self.path)
            status = status or int(self.path.strip("/"))
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


SECRET = b"whsec_test_0123456789"
BODY = b'{"type":"message.delivered","id":"evt_1","data":{"caf\xc3\xa9":true}}'
NOW = 1_795_000_000


def test_webhook_is_signed_and_verifiable(receiver: tuple[str, Received]) -> None:
    base, received = receiver
    status = WebhookSender(allow_local=True).send(f"{base}/accepted", BODY, SECRET, "msg-01JD5Q3ZK8M4", NOW)

    assert status == 202
    ((path, headers, body),) = received.requests
    assert (path, body) == ("/accepted", BODY)
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "Midstage-Webhooks/1"
    assert headers["Midstage-Idempotency-Key"] == "msg-01JD5Q3ZK8M4"
    signature = headers["Midstage-Signature"]
    expected = hmac.new(SECRET, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature == f"t={NOW},v1={expected}"
    assert verify_signature(signature, body, SECRET, now=NOW + 60)


def test_a_webhook_signed_with_a_rotated_ring_verifies_under_the_new_and_the_old_secret(
    receiver: tuple[str, Received],
) -> None:
    # Given a ring rotated a moment ago: the new key first, the old one still verifying
    new, old = b"whsec_new_0123456789abcdef", SECRET
    base, received = receiver

    WebhookSender(allow_local=True).send(f"{base}/accepted", BODY, [new, old], "msg-1", NOW)

    # Then one header carries both signatures; a receiver holding either secret accepts it
    ((_, headers, body),) = received.requests
    signature = headers["Midstage-Signature"]
    assert signature.count("v1=") == 2
    assert signature.startswith(f"t={NOW},v1=" + hmac.new(new, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest())
    assert verify_signature(signature, body, new, now=NOW)
    assert verify_signature(signature, body, old, now=NOW)
    assert not verify_signature(signature, body, b"whsec_someone_else_000", now=NOW)
    with pytest.raises(ValueError, match="at least one"):
        sign([], BODY, NOW)


def test_signature_verification_rejects_tampering_and_replays() -> None:
    header = sign(SECRET, BODY, NOW)
    assert verify_signature(header, BODY, SECRET, now=NOW)
    assert verify_signature(f"{header},v1=rotated-old-secret-signature", BODY, SECRET, now=NOW)
    assert not verify_signature(header, BODY + b" ", SECRET, now=NOW)
    assert not verify_signature(header, BODY, b"other", now=NOW)
    assert not verify_signature(header, BODY, SECRET, now=NOW + 301)
    assert not verify_signature(header.replace(f"t={NOW}", f"t={NOW + 1}"), BODY, SECRET, now=NOW)
    assert not verify_signature("v1=abc", BODY, SECRET, now=NOW)
    assert not verify_signature("", BODY, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/500", RETRYABLE),
        ("/503", RETRYABLE),
        ("/429", RETRYABLE),
        ("/408", RETRYABLE),
        ("/425", RETRYABLE),
        ("/400", PERMANENT),
        ("/401", PERMANENT),
        ("/404", PERMANENT),
        ("/410", PERMANENT),
    ],
)
def test_webhook_statuses_are_classified(receiver: tuple[str, Received], path: str, kind: str) -> None:
    base, _ = receiver
    with pytest.raises(ProviderError) as failed:
        WebhookSender(allow_local=True).send(base + path, BODY, SECRET, "k", NOW)
    assert (failed.value.kind, failed.value.code) == (kind, path.strip("/"))


def test_a_redirect_is_not_followed(receiver: tuple[str, Received]) -> None:
    base, received = receiver
    with pytest.raises(ProviderError) as failed:
        WebhookSender(allow_local=True).send(f"{base}/redirect", BODY, SECRET, "k", NOW)
    assert (failed.value.kind, failed.value.code) == (PERMANENT, "302")
    assert [path for path, _, _ in received.requests] == ["/redirect"]


def test_a_slow_endpoint_times_out_as_retryable(receiver: tuple[str, Received]) -> None:
    base, _ = receiver
    started = time.monotonic()
    with pytest.raises(ProviderError) as failed:
        WebhookSender(timeout=0.2, allow_local=True).send(f"{base}/slow", BODY, SECRET, "k", NOW)
    assert (failed.value.kind, failed.value.code) == (RETRYABLE, "timeout")
    assert time.monotonic() - started < 0.9


def test_a_closed_port_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once the probe closes
    with pytest.raises(ProviderError) as failed:
        WebhookSender(allow_local=True).send(f"http://127.0.0.1:{port}/ok", BODY, SECRET, "k", NOW)
    assert (failed.value.kind, failed.value.code) == (RETRYABLE, "network")


def test_localhost_is_refused_unless_local_development(receiver: tuple[str, Received]) -> None:
    base, received = receiver
    port = base.rsplit(":", 1)[1]
    strict = WebhookSender()
    for url in (f"{base}/ok", f"http://localhost:{port}/ok"):
        with pytest.raises(ProviderError, match="must use https") as refused:
            strict.send(url, BODY, SECRET, "k", NOW)
        assert refused.value.kind == PERMANENT
    # https to a loopback address is refused at connect time, before a byte is sent.
    for url in (f"https://127.0.0.1:{port}/ok", f"https://localhost:{port}/ok", f"https://[::1]:{port}/ok"):
        with pytest.raises(ProviderError) as refused:
            strict.send(url, BODY, SECRET, "k", NOW)
        assert (refused.value.kind, refused.value.code) == (PERMANENT, "ssrf_guard")
    assert not received.requests
    assert WebhookSender(allow_local=True).send(f"http://localhost:{port}/ok", BODY, SECRET, "k", NOW) == 200


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://[::ffff:169.254.169.254]/",
        "https://2852039166/",  # 169.254.169.254 written as one number
        "https://10.0.0.5/hook",
        "https://172.16.3.4/hook",
        "https://192.168.1.1/hook",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
    ],
)
def test_private_and_metadata_addresses_are_refused(url: str) -> None:
    # Even with local development allowed: only loopback is let through.
    with pytest.raises(ProviderError) as refused:
        WebhookSender(allow_local=True).send(url, BODY, SECRET, "k", NOW)
    assert (refused.value.kind, refused.value.code) == (PERMANENT, "ssrf_guard")


def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real: Callable[..., Any] = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.customer.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443))]  # fmt: skip
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(ProviderError) as refused:
        WebhookSender().send("https://hooks.customer.example/in", BODY, SECRET, "k", NOW)
    assert (refused.value.kind, refused.value.code) == (PERMANENT, "ssrf_guard")
    assert "10.0.0.7" in refused.value.reason


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "https://user:pass@example.com/hook",
        "https:///nohost",
        "https://example.com:99999/hook",
        "https://example.com/ho ok",
        "https://example.com/hook\r\nX: y",
        "//example.com/hook",
    ],
)
def test_malformed_webhook_urls_are_refused(url: str) -> None:
    with pytest.raises(ProviderError) as refused:
        WebhookSender(allow_local=True).send(url, BODY, SECRET, "k", NOW)
    assert refused.value.kind == PERMANENT


def test_an_idempotency_key_cannot_inject_headers(receiver: tuple[str, Received]) -> None:
    base, received = receiver
    for key in ("k\r\nX-Evil: 1", "", "clé"):
        with pytest.raises(ProviderError) as refused:
            WebhookSender(allow_local=True).send(f"{base}/ok", BODY, SECRET, key, NOW)
        assert refused.value.kind == PERMANENT
    assert not received.requests
