"""What a provider failure means for the caller: retry, give up on the message, or fix the account."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)

T = TypeVar("T")

RETRYABLE = "retryable"
PERMANENT = "permanent"
CONFIGURATION = "configuration"
_KINDS = frozenset({RETRYABLE, PERMANENT, CONFIGURATION})


class ProviderError(Exception):
    """A delivery failed; `kind` is retryable, permanent or configuration, `code` the provider's own code."""

    def __init__(self, kind: str, reason: str, code: str = "", *, ambiguous: bool = False) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown provider error kind {kind!r}")
        super().__init__(f"{kind}: {reason}" + (f" [{code}]" if code else ""))
        self.kind = kind
        self.reason = reason
        self.code = code
        # The request may have reached the provider (its answer was lost): sending again may send twice.
        self.ambiguous = ambiguous

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


# Configuration refusals that name one SNS platform application, not the account: only the devices
# of that platform are refused, so they fail their messages rather than pause push.
_ONE_APPLICATION_CODES = frozenset({"NotFound", "PlatformApplicationDisabled"})


def account_level(error: ProviderError) -> bool:
    """Whether the provider refused the account rather than the message: a configuration error it
    answered with (an error raised here before any call, such as a push platform with no
    application configured, is about one kind of message, not the account)."""
    return error.kind == CONFIGURATION and bool(error.code) and error.code not in _ONE_APPLICATION_CODES


def brief(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def client_error_parts(error: ClientError) -> tuple[str, str, int]:
    details = error.response.get("Error", {})
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return str(details.get("Code", "")), brief(str(details.get("Message", ""))), status


def classify(error: ClientError, service: str) -> ProviderError:
    """The generic mapping of an AWS error; service-specific cases are decided by the senders first."""
    code, message, status = client_error_parts(error)
    said = f"{service} answered {code or status}: {message}" if message else f"{service} answered {code or status}"
    if code in _RETRYABLE_CODES or status >= 500:
        return ProviderError(RETRYABLE, said, code)
    if code in _CONFIGURATION_CODES:
        return ProviderError(CONFIGURATION, said, code)
    # Unknown 4xx codes count as permanent: retrying a request the service called malformed never helps.
    return ProviderError(PERMANENT, said, code)


def transport_error(error: BotoCoreError, service: str) -> ProviderError:
    if isinstance(error, (NoCredentialsError, NoRegionError)):
        return ProviderError(CONFIGURATION, f"{service} client is not configured: {error}", type(error).__name__)
    if isinstance(error, ParamValidationError):
        return ProviderError(PERMANENT, f"{service} request is invalid: {brief(str(error))}", type(error).__name__)
    if isinstance(error, _ANSWER_LOST):
        said = f"{service} did not answer (it may have received the request): {brief(str(error))}"
        return ProviderError(RETRYABLE, said, type(error).__name__, ambiguous=True)
    # The request never got through (no connection): the next attempt may.
    return ProviderError(RETRYABLE, f"{service} unreachable: {brief(str(error))}", type(error).__name__)


# Sent, and the answer lost: the provider may have acted on the request.
_ANSWER_LOST = (ReadTimeoutError, ConnectionClosedError)
# Never reached the provider.
_NOT_SENT = (EndpointConnectionError, ConnectTimeoutError)
SEND_ATTEMPTS = 4


def once(
    call: Callable[[], T],
    *,
    idempotent: bool = False,
    attempts: int = SEND_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call` (a provider call made by a client without botocore retries), tried again only when
    that cannot make the provider act twice: the request never got through (no connection), or
    the provider refused it for now (throttling, 5xx: it did not take it). A lost answer (a read
    timeout, a connection closed mid-answer) is tried again only for an `idempotent` call: for a
    send, the error goes up, and transport_error marks it ambiguous. The last error goes up as
    raised, for the caller to classify."""
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as error:
            code, _, status = client_error_parts(error)
            if attempt == attempts - 1 or not (code in _RETRYABLE_CODES or status >= 500):
                raise
        except _NOT_SENT:
            if attempt == attempts - 1:
                raise
        except _ANSWER_LOST:
            if not idempotent or attempt == attempts - 1:
                raise
        sleep(min(1.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))  # jitter
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


# ------------------------------------------------------------------------------------------------ email


# Control characters (but the tab) end a header line early: refused wherever a value becomes a header.
HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
