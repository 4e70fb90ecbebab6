"""What the functions sent: emails (SES), SMS and push notifications (SNS), and SES's feedback events.

moto keeps what it "sent" in its backends (`ses_backends[...].sent_messages`,
`sns_backends[...].sms_messages`, each platform endpoint's `messages`) but drops part of every
request: SES v2's `ConfigurationSetName` and `EmailTags`, the text part when a simple message also
has HTML, simple messages' custom headers and attachments, SMS message attributes (SMS type,
sender ID), and the `MessageStructure` of a push. `record_what_moto_drops` wraps moto's handlers
to keep those, keyed by the message id moto answered, so the outbox shows what AWS would have
received. The local cloud installs it before moto serves its first request.

moto generates no sending events (bounce, complaint, delivery, open, click...). `ses_event_record`
builds the record SES publishes to an event destination's SNS topic, so that
`LocalCloud.simulate_ses_event` can run a platform's feedback path as on AWS.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import functools
import inspect
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Any

# ---------------------------------------------------------------------------------- what was sent


@dataclass(frozen=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int  # bytes, decoded

    def to_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "contentType": self.content_type, "size": self.size}


@dataclass(frozen=True)
class SentEmail:
    message_id: str  # SES's id: `mail.messageId` of the message's events
    source: str  # the sender as given: "Shop <no-reply@example.com>"
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # a repeated header's values are joined with ", "
    tags: dict[str, str] = field(default_factory=dict)  # EmailTags (or X-SES-MESSAGE-TAGS)
    configuration_set: str | None = None  # as SES applies it: the request's, else the identity's default
    attachments: tuple[Attachment, ...] = ()
    raw: str | None = None  # the MIME text of a raw message
    template: str | None = None  # a templated message's template name and data (not rendered)
    template_data: str | None = None
    sent_at: datetime | None = None

    @property
    def recipients(self) -> tuple[str, ...]:
        """Every recipient address (To, Cc, Bcc), without display names, each once."""
        return _unique_addresses([*self.to, *self.cc, *self.bcc])

    def to_json(self) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "source": self.source,
            "to": list(self.to),
            "cc": list(self.cc),
            "bcc": list(self.bcc),
            "replyTo": list(self.reply_to),
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "headers": self.headers,
            "tags": self.tags,
            "configurationSet": self.configuration_set,
            "attachments": [attachment.to_json() for attachment in self.attachments],
            "template": self.template,
            "templateData": self.template_data,
            "sentAt": _iso(self.sent_at),
        }


@dataclass(frozen=True)
class SentSms:
    message_id: str
    phone_number: str
    message: str
    attributes: dict[str, str] = field(default_factory=dict)  # e.g. AWS.SNS.SMS.SMSType: Transactional
    sent_at: datetime | None = None

    @property
    def sms_type(self) -> str | None:
        return self.attributes.get("AWS.SNS.SMS.SMSType")

    def to_json(self) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "phoneNumber": self.phone_number,
            "message": self.message,
            "attributes": self.attributes,
            "sentAt": _iso(self.sent_at),
        }


@dataclass(frozen=True)
class SentPush:
    message_id: str
    endpoint_arn: str
    token: str
    platform: str  # the platform application's: APNS, APNS_SANDBOX, GCM...
    application_arn: str
    message: str  # as published
    payload: str  # what the push service receives: with MessageStructure=json, the platform's (or default) entry
    attributes: dict[str, str] = field(default_factory=dict)
    sent_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "endpointArn": self.endpoint_arn,
            "token": self.token,
            "platform": self.platform,
            "applicationArn": self.application_arn,
            "message": self.message,
            "payload": self.payload,
            "attributes": self.attributes,
            "sentAt": _iso(self.sent_at),
        }


# ---------------------------------------------------------------------------------- recording

_lock = threading.Lock()
_recorded: dict[str, dict[str, Any]] = {}  # message id -> what moto did not keep
_sequence = itertools.count()
_installed = False
# The outbox is a window, not an archive: the last KEPT_MESSAGES emails, the last SMS and the last
# push notifications each (moto would keep every one, and a long run would grow without bound).
KEPT_MESSAGES = 5_000


def forget_recorded() -> None:
    """Drop what was recorded (moto's state was reset)."""
    with _lock:
        _recorded.clear()


def _remember(message_id: str, details: dict[str, Any]) -> None:
    details = {**details, "sentAt": datetime.now(UTC), "sequence": next(_sequence)}
    with _lock:
        _recorded[message_id] = details
        while len(_recorded) > 3 * KEPT_MESSAGES:
            del _recorded[next(iter(_recorded))]


def _trim(messages: list[Any]) -> None:
    if len(messages) > KEPT_MESSAGES:
        del messages[: len(messages) - KEPT_MESSAGES]


def _trim_ordered(messages: Any) -> None:
    while len(messages) > KEPT_MESSAGES:
        messages.popitem(last=False)


def recorded_items() -> list[tuple[str, dict[str, Any]]]:
    """What was recorded, JSON-ready (for the local cloud's persistence)."""
    shaped = []
    for message_id, details in _recorded_items():
        details = dict(details)
        if isinstance(details.get("sentAt"), datetime):
            details["sentAt"] = details["sentAt"].isoformat()
        if details.get("attachments"):
            details["attachments"] = [asdict(attachment) for attachment in details["attachments"]]
        shaped.append((message_id, details))
    return shaped


def restore_recorded(message_id: str, details: dict[str, Any] | None) -> None:
    """Put back (or drop, with None) one recorded entry that `recorded_items` gave."""
    global _sequence
    with _lock:
        _recorded.pop(message_id, None)
        if details is None:
            return
        details = dict(details)
        if isinstance(details.get("sentAt"), str):
            details["sentAt"] = datetime.fromisoformat(details["sentAt"])
        if details.get("attachments"):
            details["attachments"] = [Attachment(**attachment) for attachment in details["attachments"]]
        _recorded[message_id] = details
        following = int(details.get("sequence", 0)) + 1
        current = next(_sequence)
        _sequence = itertools.count(max(current, following))


def _recalled(message_id: str) -> dict[str, Any]:
    with _lock:
        return dict(_recorded.get(message_id, {}))


def _recorded_items() -> list[tuple[str, dict[str, Any]]]:
    with _lock:
        return [(message_id, dict(details)) for message_id, details in _recorded.items()]


def record_what_moto_drops() -> None:
    """Wrap moto's SES and SNS handlers to keep what their backends drop (idempotent; process-wide)."""
    global _installed
    if _installed:
        return
    from moto.ses.responses import EmailResponse
    from moto.sesv2.responses import SESV2Response
    from moto.sns.models import SNSBackend

    SESV2Response.send_email = _after(SESV2Response.send_email, _record_sesv2)  # type: ignore[method-assign,assignment]
    for name in ("send_email", "send_raw_email", "send_templated_email"):
        setattr(EmailResponse, name, _after(getattr(EmailResponse, name), _record_ses_v1))
    SNSBackend.publish = _wrap_publish(SNSBackend.publish)  # type: ignore[method-assign]
    _installed = True


def _after(handler: Callable[[Any], Any], record: Callable[[Any, Any], None]) -> Callable[[Any], Any]:
    @functools.wraps(handler)
    def run(response: Any) -> Any:
        answer = handler(response)
        record(response, answer)
        return answer

    return run


def _message_id(answer: Any) -> str:
    # moto's SES v2 handler answers JSON text; the v1 handlers an ActionResult around a dict.
    result = json.loads(answer) if isinstance(answer, str | bytes) else answer.result
    return str(result["MessageId"])


def _record_sesv2(response: Any, answer: Any) -> None:
    _remember(_message_id(answer), sesv2_request_details(json.loads(response.body)))
    _trim(response.sesv2_backend.core_backend.sent_messages)


def _record_ses_v1(response: Any, answer: Any) -> None:
    param = response._get_param
    tags = param("Tags") or []
    details: dict[str, Any] = {
        "configurationSet": param("ConfigurationSetName"),
        "tags": {str(tag["Name"]): str(tag["Value"]) for tag in tags},
        "replyTo": list(param("ReplyToAddresses") or []),
    }
    if param("Message.Body.Text.Data") is not None or param("Message.Body.Html.Data") is not None:
        details.update(text=param("Message.Body.Text.Data"), html=param("Message.Body.Html.Data"))
    _remember(_message_id(answer), details)
    _trim(response.backend.sent_messages)


def sesv2_request_details(request: Mapping[str, Any]) -> dict[str, Any]:
    """What the outbox keeps of an SES v2 SendEmail request beyond what moto stores."""
    details: dict[str, Any] = {
        "configurationSet": request.get("ConfigurationSetName"),
        "tags": {str(tag["Name"]): str(tag["Value"]) for tag in request.get("EmailTags") or []},
        "replyTo": list(request.get("ReplyToAddresses") or []),
    }
    destination = request.get("Destination") or {}
    details["bcc"] = list(destination.get("BccAddresses") or [])
    simple = (request.get("Content") or {}).get("Simple")
    if simple is not None:
        body = simple.get("Body") or {}
        details.update(
            subject=(simple.get("Subject") or {}).get("Data"),
            text=(body.get("Text") or {}).get("Data"),
            html=(body.get("Html") or {}).get("Data"),
            headers=[(str(h["Name"]), str(h["Value"])) for h in simple.get("Headers") or []],
            attachments=[
                Attachment(
                    attachment.get("FileName"),
                    str(attachment.get("ContentType", "application/octet-stream")),
                    _decoded_size(attachment.get("RawContent", "")),
                )
                for attachment in simple.get("Attachments") or []
            ],
        )
    return details


def _decoded_size(content: Any) -> int:
    # botocore sends blobs base64-encoded in JSON bodies.
    try:
        return len(base64.b64decode(str(content), validate=True))
    except (binascii.Error, ValueError):
        return len(str(content).encode())


def _wrap_publish(publish: Callable[..., str]) -> Callable[..., str]:
    signature = inspect.signature(publish)

    @functools.wraps(publish)
    def run(backend: Any, *args: Any, **kwargs: Any) -> str:
        message_id = publish(backend, *args, **kwargs)
        call = signature.bind(backend, *args, **kwargs).arguments
        attributes = _attribute_texts(call.get("message_attributes"))
        if call.get("phone_number"):
            _remember(message_id, {"attributes": attributes})
            _trim_ordered(backend.sms_messages)
        elif ":endpoint/" in str(call.get("arn") or ""):
            endpoint = backend.get_endpoint(call["arn"])
            message = str(call["message"])
            platform = str(endpoint.application.platform)
            _remember(
                message_id,
                {
                    "push": True,
                    "account": backend.account_id,
                    "region": backend.region_name,
                    "endpointArn": endpoint.arn,
                    "token": endpoint.token,
                    "platform": platform,
                    "applicationArn": endpoint.application.arn,
                    "message": message,
                    "payload": push_payload(message, call.get("message_structure"), platform),
                    "attributes": attributes,
                },
            )
            _trim_ordered(endpoint.messages)
        return message_id

    return run


def _attribute_texts(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    # moto keeps SNS message attributes as {"Type": ..., "Value": ...}.
    texts: dict[str, str] = {}
    for name, attribute in (attributes or {}).items():
        value = attribute.get("Value", attribute.get("StringValue")) if isinstance(attribute, Mapping) else attribute
        texts[str(name)] = value if isinstance(value, str) else json.dumps(value, default=str)
    return texts


def push_payload(message: str, structure: str | None, platform: str) -> str:
    """What SNS hands the push service: with MessageStructure=json the platform's entry, else `default`."""
    if structure != "json":
        return message
    try:
        entries = json.loads(message)
    except json.JSONDecodeError:
        return message
    if not isinstance(entries, dict):
        return message
    chosen = entries.get(platform, entries.get("default", message))
    return chosen if isinstance(chosen, str) else json.dumps(chosen)


# ---------------------------------------------------------------------------------- reading moto back


def sent_emails(account_id: str, region: str) -> list[SentEmail]:
    """The emails moto's SES accepted in this account and region, oldest first."""
    from moto.ses.models import Message, RawMessage, TemplateMessage, ses_backends

    backend = ses_backends[account_id][region]
    identities = {name: identity.configuration_set_name for name, identity in backend.email_identities.items()}
    emails: list[SentEmail] = []
    for message in list(backend.sent_messages):
        extra = _recalled(message.id)
        if isinstance(message, RawMessage):
            sent = email_from_raw(message.id, message.source, list(message.destinations), message.raw_data, extra)
        elif isinstance(message, Message):
            sent = email_from_simple(
                message.id, message.source, message.destinations, message.subject, message.body, extra
            )
        elif isinstance(message, TemplateMessage):
            sent = email_from_simple(message.id, message.source, message.destinations, None, None, extra)
            sent = replace(sent, template=message.template, template_data=message.template_data)
        else:  # a kind of message this moto version adds: show what is common to all
            sent = SentEmail(str(message.id), str(getattr(message, "source", "")), ())
        if sent.configuration_set is None:
            sent = replace(sent, configuration_set=identity_configuration_set(sent.source, identities))
        emails.append(sent)
    return emails


def email_from_simple(
    message_id: str,
    source: str,
    destinations: Mapping[str, list[str]],
    subject: str | None,
    body: str | None,
    extra: Mapping[str, Any],
) -> SentEmail:
    """A simple (non-raw) message from moto's record and the request details kept beside it."""
    to = tuple(destinations.get("ToAddresses") or ())
    cc = tuple(destinations.get("CcAddresses") or ())
    bcc = tuple(destinations.get("BccAddresses") or ())
    reply_to = tuple(extra.get("replyTo") or ())
    subject = extra.get("subject", subject)
    text, html = extra.get("text"), extra.get("html")
    if "text" not in extra and "html" not in extra:
        # Without the request moto's one body is all there is; it keeps the HTML one if there were two.
        html = body if body is not None and re.search(r"<[a-zA-Z!/]", body) else None
        text = body if html is None else None
    headers: dict[str, str] = {"From": source}
    for name, values in (("To", to), ("Cc", cc), ("Reply-To", reply_to)):
        if values:
            headers[name] = ", ".join(values)
    if subject is not None:
        headers["Subject"] = subject
    for name, value in extra.get("headers") or ():
        _add_header(headers, name, value)
    return SentEmail(
        message_id=message_id,
        source=source,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        subject=subject,
        text=text,
        html=html,
        headers=headers,
        tags=dict(extra.get("tags") or {}),
        configuration_set=extra.get("configurationSet"),
        attachments=tuple(extra.get("attachments") or ()),
        sent_at=extra.get("sentAt"),
    )


def email_from_raw(
    message_id: str, source: str | None, destinations: list[str], raw: str, extra: Mapping[str, Any]
) -> SentEmail:
    """A raw message: its MIME text parsed for headers, parts and attachments.

    SES reads the configuration set and tags of a raw message from its X-SES-CONFIGURATION-SET and
    X-SES-MESSAGE-TAGS headers when the request does not name them.
    """
    parsed = email.message_from_string(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)  # the default policy's message class
    headers: dict[str, str] = {}
    for name, value in parsed.items():
        _add_header(headers, name, str(value))
    to = _header_addresses(parsed, "To")
    cc = _header_addresses(parsed, "Cc")
    listed = {address.lower() for address in _unique_addresses([*to, *cc])}
    # moto appends the header recipients to the request's Destinations: what is left over is Bcc.
    bcc = tuple(
        address
        for address in _unique_addresses([*destinations, *extra.get("bcc", ())])
        if address.lower() not in listed
    )
    text_part = parsed.get_body(preferencelist=("plain",))
    html_part = parsed.get_body(preferencelist=("html",))
    attachments = tuple(
        Attachment(part.get_filename(), part.get_content_type(), len(part.get_payload(decode=True) or b""))
        for part in parsed.iter_attachments()
        if isinstance(part, EmailMessage)
    )
    tags = dict(extra.get("tags") or {}) or _message_tags_header(parsed.get("X-SES-MESSAGE-TAGS"))
    configuration_set = extra.get("configurationSet") or _optional_str(parsed.get("X-SES-CONFIGURATION-SET"))
    return SentEmail(
        message_id=message_id,
        source=source or str(parsed.get("From", "")),
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=tuple(extra.get("replyTo") or ()) or _header_addresses(parsed, "Reply-To"),
        subject=_optional_str(parsed.get("Subject")),
        text=_content(text_part),
        html=_content(html_part),
        headers=headers,
        tags=tags,
        configuration_set=configuration_set,
        attachments=attachments,
        raw=raw,
        sent_at=extra.get("sentAt"),
    )


def _content(part: Any) -> str | None:
    if part is None:
        return None
    content = part.get_content()
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


def _header_addresses(message: EmailMessage, name: str) -> tuple[str, ...]:
    values = message.get_all(name) or []
    return tuple(address for _, address in getaddresses([str(value) for value in values]) if address)


def _message_tags_header(value: Any) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in str(value or "").split(","):
        name, separator, tag_value = pair.partition("=")
        if separator and name.strip():
            tags[name.strip()] = tag_value.strip()
    return tags


def _add_header(headers: dict[str, str], name: str, value: str) -> None:
    headers[name] = f"{headers[name]}, {value}" if name in headers else value


def _unique_addresses(values: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for value in values:
        address = parseaddr(value)[1] or value
        seen.setdefault(address.lower(), address)
    return tuple(seen.values())


def identity_configuration_set(source: str, identities: Mapping[str, str | None]) -> str | None:
    """The default configuration set SES applies: the sending address's identity's, else its domain's."""
    address = parseaddr(source)[1].lower()
    lowered = {name.lower(): value for name, value in identities.items()}
    for identity in (address, address.rpartition("@")[2]):
        if lowered.get(identity):
            return lowered[identity]
    return None


def verified_identities(account_id: str, region: str) -> list[str]:
    """The addresses and domains moto's SES holds as verified."""
    from moto.ses.models import ses_backends

    return list(ses_backends[account_id][region].email_identities)


def sending_identity(source: str, identities: Iterable[str]) -> str:
    """The verified identity that authorised `source`: the address itself, else its domain."""
    address = parseaddr(source)[1]
    known = {identity.lower() for identity in identities}
    return address if address.lower() in known else address.rpartition("@")[2]


def sent_sms(account_id: str, region: str) -> list[SentSms]:
    """The SMS moto's SNS accepted (Publish with PhoneNumber), oldest first."""
    from moto.sns.models import sns_backends

    backend = sns_backends[account_id][region]
    messages: list[SentSms] = []
    for message_id, (phone_number, text) in list(backend.sms_messages.items()):
        extra = _recalled(message_id)
        messages.append(
            SentSms(message_id, phone_number, text, dict(extra.get("attributes") or {}), extra.get("sentAt"))
        )
    return messages


def sent_push(account_id: str, region: str) -> list[SentPush]:
    """The notifications published to platform endpoints, oldest first (kept even if the endpoint is deleted)."""
    pushes = [
        (details["sequence"], message_id, details)
        for message_id, details in _recorded_items()
        if details.get("push") and details.get("account") == account_id and details.get("region") == region
    ]
    return [
        SentPush(
            message_id=message_id,
            endpoint_arn=details["endpointArn"],
            token=details["token"],
            platform=details["platform"],
            application_arn=details["applicationArn"],
            message=details["message"],
            payload=details["payload"],
            attributes=dict(details.get("attributes") or {}),
            sent_at=details.get("sentAt"),
        )
        for _, message_id, details in sorted(pushes, key=lambda item: item[0])
    ]


# ---------------------------------------------------------------------------------- SES sending events

# eventType -> (the key of its type-specific object, its MatchingEventTypes name, lower case, no "_")
SES_EVENTS: dict[str, tuple[str, str]] = {
    "Send": ("send", "send"),
    "Reject": ("reject", "reject"),
    "Bounce": ("bounce", "bounce"),
    "Complaint": ("complaint", "complaint"),
    "Delivery": ("delivery", "delivery"),
    "Open": ("open", "open"),
    "Click": ("click", "click"),
    "Rendering Failure": ("failure", "renderingfailure"),
    "DeliveryDelay": ("deliveryDelay", "deliverydelay"),
    "Subscription": ("subscription", "subscription"),
}
# The subject SES event-publishing notifications are reported to carry; SES's guide does not show
# the SNS envelope, only the record in it.
SES_EVENT_SUBJECT = "Amazon SES Email Event Notification"
_LOCAL_MTA = "localcloud.invalid"
_USER_AGENT = "Mozilla/5.0 (local cloud)"
# Fields that describe one recipient within a bounce or delivery delay, not the event.
_PER_RECIPIENT = {"bounce": ("action", "status", "diagnosticCode"), "deliveryDelay": ("status", "diagnosticCode")}


def ses_event_type(name: str) -> str:
    """The eventType for any spelling of it: "bounce", "BOUNCE", "RENDERING_FAILURE", "Rendering Failure"..."""
    wanted = re.sub(r"[\s_]", "", name).lower()
    for event_type, (_, matching) in SES_EVENTS.items():
        if matching == wanted:
            return event_type
    raise ValueError(f"unknown SES event type {name!r}; known: {', '.join(SES_EVENTS)}")


def camel_case(name: str) -> str:
    """bounce_sub_type -> bounceSubType; names already in camelCase are kept."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def ses_mail_object(
    sent: SentEmail,
    *,
    account_id: str,
    region: str,
    identity: str,
    configuration_set: str | None,
    tags: Mapping[str, str],
    caller: str = "localcloud",
) -> dict[str, Any]:
    """The `mail` object of SES's event records for a message that was sent."""
    address = parseaddr(sent.source)[1]
    automatic: dict[str, list[str]] = {
        "ses:source-ip": ["127.0.0.1"],
        "ses:from-domain": [address.rpartition("@")[2]],
        "ses:caller-identity": [caller],
    }
    if configuration_set:
        automatic["ses:configuration-set"] = [configuration_set]
    common: dict[str, Any] = {"from": [sent.source], "to": list(sent.to)}
    if sent.cc:
        common["cc"] = list(sent.cc)
    if sent.reply_to:
        common["replyTo"] = list(sent.reply_to)
    if "Date" in sent.headers:
        common["date"] = sent.headers["Date"]
    common["messageId"] = sent.message_id
    if sent.subject is not None:
        common["subject"] = sent.subject
    return {
        "timestamp": _iso(sent.sent_at) or _iso(datetime.now(UTC)),
        "source": sent.source,
        "sourceArn": f"arn:aws:ses:{region}:{account_id}:identity/{identity}",
        "sendingAccountId": account_id,
        "messageId": sent.message_id,
        "destination": list(sent.recipients),
        "headersTruncated": False,
        "headers": [{"name": name, "value": value} for name, value in sent.headers.items()],
        "commonHeaders": common,
        "tags": {**automatic, **{name: [value] for name, value in tags.items()}},
    }


def ses_event_record(
    event_type: str, mail: Mapping[str, Any], recipients: list[str], details: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The record SES publishes to an SNS event destination (the `Message` of the notification).

    `details` override the type-specific fields, in snake_case or camelCase (bounce_type="Transient",
    link="https://...", reason="Bad content"); per-recipient fields of a bounce or a delivery delay
    (action, status, diagnostic_code) apply to each recipient.
    """
    event_type = ses_event_type(event_type)
    key = SES_EVENTS[event_type][0]
    stamp = _iso(now)
    overrides = {camel_case(name): value for name, value in details.items()}
    per_recipient = {name: overrides.pop(name) for name in _PER_RECIPIENT.get(key, ()) if name in overrides}
    feedback_id = f"{uuid.uuid4().hex}-000000"
    body: dict[str, Any]
    if key == "bounce":
        transient = overrides.get("bounceType") == "Transient"
        entry = {
            "action": "failed",
            "status": "4.4.7" if transient else "5.1.1",
            "diagnosticCode": "smtp; 421 4.4.7 Delivery time expired" if transient else "smtp; 550 5.1.1 user unknown",
            **per_recipient,
        }
        body = {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address, **entry} for address in recipients],
            "timestamp": stamp,
            "feedbackId": feedback_id,
            "reportingMTA": f"dsn; {_LOCAL_MTA}",
        }
    elif key == "complaint":
        body = {
            "complainedRecipients": [{"emailAddress": address} for address in recipients],
            "timestamp": stamp,
            "feedbackId": feedback_id,
            "userAgent": _USER_AGENT,
            "complaintFeedbackType": "abuse",
            "arrivalDate": stamp,
        }
    elif key == "delivery":
        body = {
            "timestamp": stamp,
            "processingTimeMillis": 1000,
            "recipients": list(recipients),
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": _LOCAL_MTA,
        }
    elif key == "deliveryDelay":
        entry = {"status": "4.4.1", "diagnosticCode": "smtp; 421 4.4.1 Unable to connect to the remote host"}
        body = {
            "timestamp": stamp,
            "delayType": "TransientCommunicationFailure",
            "expirationTime": stamp,
            "delayedRecipients": [{"emailAddress": address, **entry, **per_recipient} for address in recipients],
            "reportingMTA": _LOCAL_MTA,
        }
    elif key == "reject":
        body = {"reason": "Bad content"}
    elif key == "open":
        body = {"ipAddress": "192.0.2.1", "timestamp": stamp, "userAgent": _USER_AGENT}
    elif key == "click":
        body = {
            "ipAddress": "192.0.2.1",
            "timestamp": stamp,
            "userAgent": _USER_AGENT,
            "link": "https://example.com/",
            "linkTags": {},
        }
    elif key == "failure":
        body = {"errorMessage": "Attribute is not present in the rendering data.", "templateName": "unknown"}
    elif key == "subscription":
        body = {"contactList": "unknown", "timestamp": stamp, "source": "UnsubscribeHeader"}
    else:  # "send": an empty object, as SES sends it
        body = {}
    body.update(overrides)
    return {"eventType": event_type, "mail": dict(mail), key: body}


# ---------------------------------------------------------------------------------- for people


def format_outbox(outbox: Mapping[str, Any], *, width: int = 100) -> str:
    """The outbox answer (`GET /_localcloud/outbox`) as text for a terminal."""
    lines: list[str] = []
    emails = outbox.get("emails") or []
    lines.append(f"Emails ({len(emails)})")
    for sent in emails:
        recipients = ", ".join([*sent.get("to", []), *sent.get("cc", []), *sent.get("bcc", [])])
        lines.append(f"  {sent.get('sentAt') or '-'}  {sent['messageId']}")
        lines.append(f"    {sent.get('source')} -> {recipients}")
        if sent.get("subject") is not None:
            lines.append(f"    Subject: {sent['subject']}")
        if sent.get("configurationSet"):
            lines.append(f"    Configuration set: {sent['configurationSet']}")
        if sent.get("tags"):
            lines.append("    Tags: " + ", ".join(f"{k}={v}" for k, v in sorted(sent["tags"].items())))
        if sent.get("template"):
            lines.append(f"    Template: {sent['template']} {sent.get('templateData') or ''}")
        body = sent.get("text") or _strip_tags(sent.get("html") or "")
        if body:
            lines.append(f"    {_brief(body, width)}")
        for attachment in sent.get("attachments") or []:
            kind, size = attachment["contentType"], attachment["size"]
            lines.append(f"    Attachment: {attachment['filename']} ({kind}, {size} B)")
    sms = outbox.get("sms") or []
    lines.append(f"SMS ({len(sms)})")
    for message in sms:
        kind = (message.get("attributes") or {}).get("AWS.SNS.SMS.SMSType")
        label = f" [{kind}]" if kind else ""
        lines.append(f"  {message.get('sentAt') or '-'}  {message['phoneNumber']}{label}")
        lines.append(f"    {_brief(message['message'], width)}")
    push = outbox.get("push") or []
    lines.append(f"Push ({len(push)})")
    for message in push:
        lines.append(f"  {message.get('sentAt') or '-'}  {message['platform']} token {_brief(message['token'], 40)}")
        lines.append(f"    {_brief(message['payload'], width)}")
    return "\n".join(lines)


def _strip_tags(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def _brief(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
