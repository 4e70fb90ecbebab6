"""Delivery providers: email through SES v2, SMS and mobile push through SNS, webhooks over HTTPS.

Only this module talks to the delivery services. Every failure leaves as a ProviderError whose `kind`
tells the caller what to do next:

- ``retryable``: try the same message again later (throttling, a 5xx, a timeout, a dropped connection);
- ``permanent``: this message can never be delivered as it is (bad address, rejected content, a dead push
  token, a refused webhook URL), so record the failure and move on;
- ``configuration``: nothing on this channel will go out until an operator fixes the account (unverified
  sender, SES sandbox, sending paused, a missing platform application), so pause and alert rather than
  burn retries on every message.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, ParamValidationError

from midstage.adapters import aws

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sesv2.type_defs import MessageTagTypeDef
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef

RETRYABLE = "retryable"
PERMANENT = "permanent"
CONFIGURATION = "configuration"
_KINDS = frozenset({RETRYABLE, PERMANENT, CONFIGURATION})


class ProviderError(Exception):
    """A delivery failed; `kind` is retryable, permanent or configuration, `code` the provider's own code."""

    def __init__(self, kind: str, reason: str, code: str = "") -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown provider error kind {kind!r}")
        super().__init__(f"{kind}: {reason}" + (f" [{code}]" if code else ""))
        self.kind = kind
        self.reason = reason
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.kind == RETRYABLE


# ------------------------------------------------------------------------------------- AWS error mapping

_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "TooManyRequestsException",
        "LimitExceededException",  # SES: sending rate or daily quota; both refill with time
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServiceError",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
        "KMSThrottling",
        # Lambda rotates credentials; the next attempt signs with fresh ones.
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
_CONFIGURATION_CODES = frozenset(
    {
        "AccountSendingPausedException",
        "SendingPausedException",
        "AccountSuspendedException",
        "MailFromDomainNotVerifiedException",
        "ConfigurationSetDoesNotExist",
        "ConfigurationSetSendingPausedException",
        "AuthorizationError",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "PlatformApplicationDisabled",
        "KMSDisabled",
        "KMSAccessDenied",
        "KMSNotFound",
        "KMSInvalidState",
        "KMSOptInRequired",
    }
)
_PERMANENT_CODES = frozenset(
    {
        "BadRequestException",
        "InvalidParameter",
        "InvalidParameterValue",
        "InvalidParameterException",
        "ValidationError",
        "ValidationException",
        "MessageRejected",
        "NotFound",
        "NotFoundException",
        "EndpointDisabled",
        "InvalidPhoneNumber",
    }
)


def _brief(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _client_error_parts(error: ClientError) -> tuple[str, str, int]:
    details = error.response.get("Error", {})
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return str(details.get("Code", "")), _brief(str(details.get("Message", ""))), status


def classify(error: ClientError, service: str) -> ProviderError:
    """The generic mapping of an AWS error; service-specific cases are decided by the senders first."""
    code, message, status = _client_error_parts(error)
    said = f"{service} answered {code or status}: {message}" if message else f"{service} answered {code or status}"
    if code in _RETRYABLE_CODES or status >= 500:
        return ProviderError(RETRYABLE, said, code)
    if code in _CONFIGURATION_CODES:
        return ProviderError(CONFIGURATION, said, code)
    # Unknown 4xx codes count as permanent: retrying a request the service called malformed never helps.
    return ProviderError(PERMANENT, said, code)


def _transport_error(error: BotoCoreError, service: str) -> ProviderError:
    if isinstance(error, (NoCredentialsError, NoRegionError)):
        return ProviderError(CONFIGURATION, f"{service} client is not configured: {error}", type(error).__name__)
    if isinstance(error, ParamValidationError):
        return ProviderError(PERMANENT, f"{service} request is invalid: {_brief(str(error))}", type(error).__name__)
    # Connection failures and timeouts: botocore already retried, the next attempt may get through.
    return ProviderError(RETRYABLE, f"{service} unreachable: {_brief(str(error))}", type(error).__name__)


# ------------------------------------------------------------------------------------------------ email

# Control characters in a header value are how header injection starts; TAB is legal folding whitespace.
_HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 ftext: printable ASCII except the colon
# Headers that shape delivery or structure are ours to set: a custom "Bcc" must not add recipients.
_RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "reply-to",
        "sender",
        "return-path",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
    }
)
# SES's API reference (MessageTag) allows only ASCII letters, digits, "_" and "-" in tag names and values,
# so "." and "@" are replaced too: a refused tag would fail the whole send.
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_TAG_LIMIT = 256
# Folding at 78 columns could split a long List-Unsubscribe URL; 998 is RFC 5322's hard line limit.
_MIME_POLICY = SMTP.clone(max_line_length=998)
# Quoted-printable keeps every line 7-bit and short whatever the content (minified HTML has huge lines),
# so no relay on the way needs 8BITMIME.
_CTE = "quoted-printable"


@dataclass(frozen=True)
class OutboundEmail:
    sender: str
    to: str
    subject: str
    html: str | None
    text: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    configuration_set: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)  # the message id goes here, for feedback correlation
    reply_to: str | None = None


def _address(value: str, role: str, kind: str) -> str:
    """One mailbox, display name allowed; non-ASCII display names come back RFC 2047 encoded."""
    if _HEADER_UNSAFE.search(value):
        raise ProviderError(kind, f"{role} address contains a line break or control character")
    # getaddresses sees every mailbox in the text, so "a@x.org <b@y.org>" is refused rather than half-read.
    found = getaddresses([value])
    name, address = found[0] if len(found) == 1 else ("", "")
    local, _, domain = address.rpartition("@")
    if not local or "." not in domain or any(char.isspace() for char in address):
        raise ProviderError(kind, f"{role} is not a single email address: {_brief(value, 120)!r}")
    return formataddr((name, address), charset="utf-8") if name else address


def _header_value(name: str, value: str) -> str:
    if _HEADER_UNSAFE.search(value):
        raise ProviderError(PERMANENT, f"header {name} contains a line break or control character; refused")
    return value


def ses_tags(tags: Mapping[str, str]) -> list[MessageTagTypeDef]:
    """Tags as SES accepts them: unsupported characters become "_", at most 256 characters each."""
    sanitised: list[MessageTagTypeDef] = []
    for name, value in tags.items():
        clean_name = _TAG_UNSAFE.sub("_", name)[:_TAG_LIMIT]
        if clean_name:
            # SES refuses an empty value; "_" keeps the tag (and its name) present in the events.
            sanitised.append({"Name": clean_name, "Value": _TAG_UNSAFE.sub("_", value)[:_TAG_LIMIT] or "_"})
    return sanitised


def mime_message(email: OutboundEmail) -> bytes:
    """The raw RFC 5322 message: multipart/alternative when there is both text and HTML, UTF-8 throughout.

    Raises ProviderError (permanent, or configuration for a bad sender) instead of building a message whose
    headers a subject or custom header could rewrite.
    """
    if email.text is None and email.html is None:
        raise ProviderError(PERMANENT, "email has neither a text nor an HTML body")
    message = EmailMessage(policy=_MIME_POLICY)
    message["From"] = _address(email.sender, "sender", CONFIGURATION)
    message["To"] = _address(email.to, "recipient", PERMANENT)
    if email.reply_to:
        message["Reply-To"] = _address(email.reply_to, "reply-to", PERMANENT)
    message["Subject"] = _header_value("Subject", email.subject)
    message["Date"] = formatdate(usegmt=True)
    for name, value in email.headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ProviderError(PERMANENT, f"invalid header name {_brief(name, 80)!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ProviderError(PERMANENT, f"header {name} is set by the sender and cannot be overridden")
        message[name] = _header_value(name, value)
    if email.text is not None:
        message.set_content(email.text, charset="utf-8", cte=_CTE)
        if email.html is not None:
            message.add_alternative(email.html, subtype="html", charset="utf-8", cte=_CTE)
    else:
        message.set_content(email.html or "", subtype="html", charset="utf-8", cte=_CTE)
    return message.as_bytes()


_FAILED_IDENTITIES = re.compile(r"failed the check in region ([A-Za-z0-9-]+):\s*(.+)$")
_NO_AUTHORITY = re.compile(r"(?:authority|authorized) to send from (?:email )?(\S+)", re.IGNORECASE)


def _not_verified_reason(message: str, email: OutboundEmail) -> str:
    """Say which identity needs verifying; SES lists them after "failed the check in region X:"."""
    sender = parseaddr(email.sender)[1].lower()
    recipient = parseaddr(email.to)[1].lower()
    sandbox = (
        "an SES account still in the sandbox can only send to verified addresses: verify the recipient "
        "or request production access for the region"
    )
    verify_sender = f"verify the sender identity {sender} (the address or its domain) in SES"
    found = _FAILED_IDENTITIES.search(message)
    if found:
        region = found.group(1).lower()
        identities = {item.strip().lower() for item in found.group(2).split(",") if item.strip()}
        parts = []
        if sender in identities or sender.rpartition("@")[2] in identities:
            parts.append(f"{verify_sender} region {region}")
        if recipient in identities:
            parts.append(f"recipient {recipient} is not verified, and {sandbox}")
        if not parts:
            parts.append(f"identities {', '.join(sorted(identities))} are not verified in SES region {region}")
        return "SES refused to send: " + "; ".join(parts)
    if _NO_AUTHORITY.search(message):
        return f"SES refused the sender: {verify_sender} before sending from it. SES said: {message}"
    return (
        f"SES refused an unverified identity: {verify_sender}; if the sender is verified, {sandbox} "
        f"(recipient {recipient}). SES said: {message}"
    )


def _ses_error(error: ClientError, email: OutboundEmail) -> ProviderError:
    code, message, _ = _client_error_parts(error)
    lowered = message.lower()
    if code == "MessageRejected" and ("not verified" in lowered or _NO_AUTHORITY.search(message)):
        return ProviderError(CONFIGURATION, _not_verified_reason(message, email), code)
    if code == "NotFoundException":
        # On SendEmail the only resources looked up are account-level (the configuration set), so every
        # message would fail the same way until someone creates it.
        named = f"configuration set {email.configuration_set!r}" if email.configuration_set else "a resource"
        return ProviderError(CONFIGURATION, f"SES could not find {named} this send names: {message}", code)
    if code == "MessageRejected":
        return ProviderError(PERMANENT, f"SES rejected the message: {message}", code)
    return classify(error, "SES")


class EmailSender:
    """SES v2 SendEmail with raw MIME, so List-Unsubscribe and List-Unsubscribe-Post (RFC 8058) travel."""

    def __init__(self, client: SESV2Client | None = None) -> None:
        self._client = client

    @property
    def client(self) -> SESV2Client:
        if self._client is None:
            self._client = aws.sesv2()
        return self._client

    def send(self, email: OutboundEmail) -> str:
        """Send one email; returns SES's message id (the `mail.messageId` of its events)."""
        raw = mime_message(email)
        sender = _address(email.sender, "sender", CONFIGURATION)
        recipient = _address(email.to, "recipient", PERMANENT)
        request: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [recipient]},
            "Content": {"Raw": {"Data": raw}},
        }
        if email.configuration_set:
            request["ConfigurationSetName"] = email.configuration_set
        tags = ses_tags(email.tags)
        if tags:
            request["EmailTags"] = tags
        try:
            answer = self.client.send_email(**request)
        except ClientError as error:
            raise _ses_error(error, email) from error
        except BotoCoreError as error:
            raise _transport_error(error, "SES") from error
        return answer["MessageId"]


# -------------------------------------------------------------------------------------------------- SMS

E164 = re.compile(r"^\+[1-9]\d{6,14}$")  # used with fullmatch: "$" alone would accept a trailing newline
SMS_TYPES = frozenset({"Transactional", "Promotional"})
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9-]{1,11}$")  # SNS: 1-11 alphanumerics, at least one letter
_SMS_MAX_BYTES = 1600  # SNS refuses longer messages (they would be split into at most ten parts)


def _string_attribute(value: str) -> MessageAttributeValueTypeDef:
    return {"DataType": "String", "StringValue": value}


class SmsSender:
    def __init__(self, client: SNSClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> SNSClient:
        if self._client is None:
            self._client = aws.sns()
        return self._client

    def send(
        self,
        phone: str,
        body: str,
        sms_type: str,
        sender_id: str | None = None,
        origination_number: str | None = None,
    ) -> str:
        """Publish one SMS; returns the SNS message id. `sms_type` is "Transactional" or "Promotional"."""
        if sms_type not in SMS_TYPES:
            raise ValueError(f"sms_type must be one of {sorted(SMS_TYPES)}, not {sms_type!r}")
        if not isinstance(phone, str) or not E164.fullmatch(phone):
            raise ProviderError(PERMANENT, f"not an E.164 phone number: {_brief(str(phone), 40)!r}")
        if not body.strip():
            raise ProviderError(PERMANENT, "SMS body is empty")
        if len(body.encode()) > _SMS_MAX_BYTES:
            raise ProviderError(PERMANENT, f"SMS body is over SNS's {_SMS_MAX_BYTES}-byte limit")
        attributes: dict[str, MessageAttributeValueTypeDef] = {"AWS.SNS.SMS.SMSType": _string_attribute(sms_type)}
        if sender_id is not None:
            if not _SENDER_ID.fullmatch(sender_id):
                raise ProviderError(
                    CONFIGURATION, f"SMS sender ID {sender_id!r} must be 1-11 letters, digits or '-', with a letter"
                )
            attributes["AWS.SNS.SMS.SenderID"] = _string_attribute(sender_id)
        if origination_number is not None:
            if not E164.fullmatch(origination_number):
                raise ProviderError(CONFIGURATION, f"origination number {origination_number!r} is not E.164")
            attributes["AWS.MM.SMS.OriginationNumber"] = _string_attribute(origination_number)
        try:
            answer = self.client.publish(PhoneNumber=phone, Message=body, MessageAttributes=attributes)
        except ClientError as error:
            raise classify(error, "SNS") from error
        except BotoCoreError as error:
            raise _transport_error(error, "SNS") from error
        return answer["MessageId"]


# ------------------------------------------------------------------------------------------------- push

_APPLICATION_PLATFORM = re.compile(r":app/([A-Z_]+)/")
_PUSH_KEYS = ("APNS", "APNS_SANDBOX", "GCM")
_PUSH_MAX_BYTES = 4096  # APNs and FCM both refuse larger payloads
# SNS names the existing endpoint when the same token is registered with different attributes.
_EXISTING_ENDPOINT = re.compile(r"Endpoint (arn:[^ ]+) already exists")
_ENDPOINT_CACHE_LIMIT = 10_000


def _apns_payload(title: str, body: str, data: Mapping[str, Any]) -> dict[str, Any]:
    if "aps" in data:
        raise ProviderError(PERMANENT, "push data may not contain the key 'aps' (APNs reserves it)")
    return {"aps": {"alert": {"title": title, "body": body}}, **data}


def _gcm_payload(title: str, body: str, data: Mapping[str, Any]) -> dict[str, Any]:
    # FCM data values must be strings; structured values travel as JSON text.
    strings = {key: value if isinstance(value, str) else json.dumps(value, default=str) for key, value in data.items()}
    return {"notification": {"title": title, "body": body}, "data": strings}


class PushSender:
    """Mobile push through SNS platform endpoints, one endpoint per device token."""

    def __init__(self, applications: Mapping[str, str], client: SNSClient | None = None) -> None:
        self.applications = dict(applications)  # platform ("ios", "android") -> platform application ARN
        self._client = client
        self._endpoints: dict[tuple[str, str], str] = {}

    @property
    def client(self) -> SNSClient:
        if self._client is None:
            self._client = aws.sns()
        return self._client

    def _application(self, platform: str) -> str:
        application = self.applications.get(platform)
        if not application:
            raise ProviderError(
                CONFIGURATION, f"no SNS platform application is configured for push platform {platform!r}"
            )
        return application

    def _create_endpoint(self, platform: str, token: str) -> str:
        if not token or len(token) > 4096 or _HEADER_UNSAFE.search(token) or token != token.strip():
            raise ProviderError(PERMANENT, "push token is empty or malformed")
        application = self._application(platform)
        try:
            arn = self.client.create_platform_endpoint(PlatformApplicationArn=application, Token=token)["EndpointArn"]
        except ClientError as error:
            code, message, _ = _client_error_parts(error)
            existing = _EXISTING_ENDPOINT.search(message) if code == "InvalidParameter" else None
            if existing is None:
                raise _sns_push_error(error) from error
            arn = existing.group(1)
        except BotoCoreError as error:
            raise _transport_error(error, "SNS") from error
        if len(self._endpoints) >= _ENDPOINT_CACHE_LIMIT:
            self._endpoints.clear()
        self._endpoints[(platform, token)] = arn
        return arn

    def endpoint_for(self, platform: str, token: str) -> str:
        """The endpoint ARN for a device token, created if new and re-enabled if the push service disabled it.

        This is the registration path: a device presenting the token again proves it is live, which is
        when AWS advises re-enabling. `send` deliberately does not, so a dead token stays dead.
        """
        arn = self._create_endpoint(platform, token)
        try:
            attributes = self.client.get_endpoint_attributes(EndpointArn=arn)["Attributes"]
            if attributes.get("Enabled", "true").lower() != "true" or attributes.get("Token", token) != token:
                self.client.set_endpoint_attributes(EndpointArn=arn, Attributes={"Token": token, "Enabled": "true"})
        except ClientError as error:
            raise _sns_push_error(error) from error
        except BotoCoreError as error:
            raise _transport_error(error, "SNS") from error
        return arn

    def payload(self, platform: str, title: str, body: str, data: Mapping[str, Any] | None = None) -> str:
        """The MessageStructure=json message: one payload per push service the application can be."""
        application = self._application(platform)
        found = _APPLICATION_PLATFORM.search(application)
        keys: tuple[str, ...] = (found.group(1),) if found else _PUSH_KEYS
        if any(key not in _PUSH_KEYS for key in keys):
            raise ProviderError(CONFIGURATION, f"push platform {keys[0]} of {application} is not supported")
        data = data or {}
        message: dict[str, str] = {"default": body}
        for key in keys:
            content = _gcm_payload(title, body, data) if key == "GCM" else _apns_payload(title, body, data)
            encoded = json.dumps(content, separators=(",", ":"), ensure_ascii=False, default=str)
            if len(encoded.encode()) > _PUSH_MAX_BYTES:
                raise ProviderError(PERMANENT, f"{key} push payload is over {_PUSH_MAX_BYTES} bytes")
            message[key] = encoded
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False)

    def send(self, platform: str, token: str, title: str, body: str, data: Mapping[str, Any] | None = None) -> str:
        """Publish one notification to a device token; returns the SNS message id."""
        message = self.payload(platform, title, body, data)
        arn = self._endpoints.get((platform, token)) or self._create_endpoint(platform, token)
        try:
            answer = self.client.publish(TargetArn=arn, Message=message, MessageStructure="json")
        except ClientError as error:
            self._endpoints.pop((platform, token), None)
            raise _sns_push_error(error) from error
        except BotoCoreError as error:
            raise _transport_error(error, "SNS") from error
        return answer["MessageId"]


def _sns_push_error(error: ClientError) -> ProviderError:
    code, message, _ = _client_error_parts(error)
    if code == "EndpointDisabled":
        return ProviderError(
            PERMANENT,
            "push token is no longer valid: the push service disabled its endpoint (app uninstalled or token "
            "rotated); stop sending to it until the device registers again",
            code,
        )
    if code == "NotFound" and "PlatformApplication" in message:
        return ProviderError(CONFIGURATION, f"SNS platform application does not exist: {message}", code)
    return classify(error, "SNS")


# ---------------------------------------------------------------------------------------------- webhooks

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
SIGNATURE_HEADER = "Midstage-Signature"
IDEMPOTENCY_HEADER = "Midstage-Idempotency-Key"
USER_AGENT = "Midstage-Webhooks/1"


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The Midstage-Signature header value: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(header: str, body: bytes, secret: bytes, now: int, tolerance_s: int = 300) -> bool:
    """How a receiver checks a webhook (this function is the reference implementation).

    1. Split the Midstage-Signature header on "," into key=value pairs; take `t` and every `v1`.
    2. Compute hex HMAC-SHA256 with the endpoint's secret over the bytes ``<t> + "." + <raw request body>``
       (the body exactly as received, before any JSON parsing).
    3. Accept if one `v1` equals it under a constant-time comparison and `t` is within `tolerance_s` of
       the receiver's clock (this bounds replays; the idempotency key catches the rest).
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def _allowed_address(address: str, allow_local: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_local
    # is_global excludes private, link-local (169.254.169.254, the metadata service), shared (100.64/10),
    # unique-local (fd00:ec2::254) and reserved ranges.
    return ip.is_global and not ip.is_multicast


def _guarded_socket(host: str, port: int, timeout: object, allow_local: bool) -> socket.socket:
    """Resolve, vet every address, then connect to a vetted one; checking at connect time defeats rebinding."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for info in infos:
        if not _allowed_address(str(info[4][0]), allow_local):
            raise ProviderError(
                PERMANENT,
                f"webhook host {host} resolves to {info[4][0]}, a private, loopback or reserved address; refused",
                "ssrf_guard",
            )
    last: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout if isinstance(timeout, (int, float)) else None)
            sock.connect(address)
        except OSError as error:
            sock.close()
            last = error
            continue
        return sock
    raise last


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, allow_local: bool, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._allow_local = allow_local

    def connect(self) -> None:
        self.sock = _guarded_socket(self.host, self.port, self.timeout, self._allow_local)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, allow_local: bool, tls: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(host, context=tls, **kwargs)
        self._allow_local = allow_local
        self._tls = tls

    def connect(self) -> None:
        sock = _guarded_socket(self.host, self.port, self.timeout, self._allow_local)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow_local: bool) -> None:
        super().__init__()
        self._allow_local = allow_local

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_GuardedHTTPConnection, allow_local=self._allow_local), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow_local: bool) -> None:
        super().__init__()
        self._allow_local = allow_local
        self._tls = ssl.create_default_context()

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_GuardedHTTPSConnection, allow_local=self._allow_local, tls=self._tls)
        return self.do_open(connection, req)


def guarded_opener(allow_local: bool = False) -> urllib.request.OpenerDirector:
    """An opener with no proxies and no redirect handler: a 3xx is an answer, never a second request."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        _GuardedHTTPHandler(allow_local),
        _GuardedHTTPSHandler(allow_local),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener


class WebhookSender:
    """Signed HTTPS POSTs to customer endpoints.

    `allow_local` admits http://localhost and http://127.0.0.1 and loopback addresses, for the local cloud;
    private, link-local and metadata addresses are refused either way.
    """

    def __init__(
        self, timeout: float = 5.0, opener: urllib.request.OpenerDirector | None = None, allow_local: bool = False
    ) -> None:
        self.timeout = timeout
        self.allow_local = allow_local
        self._opener = opener or guarded_opener(allow_local)

    def check_url(self, url: str) -> None:
        """Raise ProviderError (permanent) for a URL this sender will never call."""
        if _URL_UNSAFE.search(url):
            raise ProviderError(PERMANENT, "webhook URL contains whitespace or control characters", "bad_url")
        try:
            parts = urllib.parse.urlsplit(url)
            _ = parts.port  # raises ValueError for a port out of range
        except ValueError as error:
            raise ProviderError(PERMANENT, f"webhook URL is malformed: {error}", "bad_url") from error
        host = (parts.hostname or "").lower()
        if not host:
            raise ProviderError(PERMANENT, "webhook URL has no host", "bad_url")
        if parts.username is not None or parts.password is not None:
            raise ProviderError(PERMANENT, "webhook URL must not carry credentials", "bad_url")
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and self.allow_local and host in _LOCAL_HOSTS:
            return
        raise ProviderError(
            PERMANENT,
            "webhook URLs must use https (plain http is accepted only for localhost in local development)",
            "bad_url",
        )

    def send(self, url: str, body: bytes, secret: bytes, idempotency_key: str, now: int) -> int:
        """POST `body`; returns the 2xx status, raises ProviderError otherwise."""
        self.check_url(url)
        if not idempotency_key or _HEADER_UNSAFE.search(idempotency_key) or not idempotency_key.isascii():
            raise ProviderError(PERMANENT, "idempotency key is empty or not a plain ASCII header value")
        request = urllib.request.Request(  # noqa: S310 -- check_url allows only https (and local http)
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, body, now),
                IDEMPOTENCY_HEADER: idempotency_key,
                "User-Agent": USER_AGENT,
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            error.close()
            raise _status_error(error.code) from error
        except urllib.error.URLError as error:
            code = "timeout" if isinstance(error.reason, TimeoutError) else "network"
            raise ProviderError(RETRYABLE, f"webhook unreachable: {_brief(str(error.reason)) or code}", code) from error
        except (TimeoutError, OSError, http.client.HTTPException) as error:
            code = "timeout" if isinstance(error, TimeoutError) else "network"
            raise ProviderError(RETRYABLE, f"webhook failed: {_brief(str(error)) or code}", code) from error
        if not 200 <= status < 300:
            raise _status_error(status)
        return status


def _status_error(status: int) -> ProviderError:
    if status in _RETRYABLE_STATUSES or status >= 500:
        return ProviderError(RETRYABLE, f"webhook answered HTTP {status}", str(status))
    if 300 <= status < 400:
        return ProviderError(PERMANENT, f"webhook answered HTTP {status}; redirects are not followed", str(status))
    return ProviderError(PERMANENT, f"webhook answered HTTP {status}", str(status))
