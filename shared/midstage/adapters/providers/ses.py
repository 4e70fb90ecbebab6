"""Email through SES v2: the MIME message, its tags and what SES refusals mean."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from midstage.adapters import aws
from midstage.adapters.providers.errors import (
    CONFIGURATION,
    HEADER_UNSAFE,
    PERMANENT,
    ProviderError,
    brief,
    classify,
    client_error_parts,
    once,
    transport_error,
)

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sesv2.type_defs import MessageTagTypeDef

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
    if HEADER_UNSAFE.search(value):
        raise ProviderError(kind, f"{role} address contains a line break or control character")
    # getaddresses sees every mailbox in the text, so "a@x.org <b@y.org>" is refused rather than half-read.
    found = getaddresses([value])
    name, address = found[0] if len(found) == 1 else ("", "")
    local, _, domain = address.rpartition("@")
    if not local or "." not in domain or any(char.isspace() for char in address):
        raise ProviderError(kind, f"{role} is not a single email address: {brief(value, 120)!r}")
    return formataddr((name, address), charset="utf-8") if name else address


def _header_value(name: str, value: str) -> str:
    if HEADER_UNSAFE.search(value):
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
            raise ProviderError(PERMANENT, f"invalid header name {brief(name, 80)!r}")
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
    code, message, _ = client_error_parts(error)
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
            self._client = aws.sesv2_sender()
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
            answer = once(lambda: self.client.send_email(**request))
        except ClientError as error:
            raise _ses_error(error, email) from error
        except BotoCoreError as error:
            raise transport_error(error, "SES") from error
        return answer["MessageId"]


# -------------------------------------------------------------------------------------------------- SMS
