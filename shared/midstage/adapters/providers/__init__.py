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

from midstage.adapters.providers.errors import (
    CONFIGURATION,
    PERMANENT,
    RETRYABLE,
    ProviderError,
    classify,
)
from midstage.adapters.providers.ses import EmailSender, OutboundEmail, mime_message, ses_tags
from midstage.adapters.providers.sns import SMS_TYPES, PushSender, SmsSender
from midstage.adapters.providers.webhooks import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    USER_AGENT,
    WebhookSender,
    guarded_opener,
    sign,
    verify_signature,
)

__all__ = [
    "CONFIGURATION",
    "IDEMPOTENCY_HEADER",
    "PERMANENT",
    "RETRYABLE",
    "SIGNATURE_HEADER",
    "SMS_TYPES",
    "USER_AGENT",
    "EmailSender",
    "OutboundEmail",
    "ProviderError",
    "PushSender",
    "SmsSender",
    "WebhookSender",
    "classify",
    "guarded_opener",
    "mime_message",
    "ses_tags",
    "sign",
    "verify_signature",
]
