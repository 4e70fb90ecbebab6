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
        # A server error may come after the provider took the request: a send's outcome is unknown.
        return ProviderError(RETRYABLE, said, code, ambiguous=server_failed(error))
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
# Answers that say the provider did not take the request: it may be made again whatever it does.
_REFUSED_FOR_NOW = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "TooManyRequestsException",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSThrottling",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
# A server error other than 503 says the provider failed somewhere in handling the request,
# which may be after it took it: for a send, the outcome is unknown.
_SERVER_FAILED = frozenset(
    {
        "InternalFailure",
        "InternalError",
        "InternalServiceError",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
SEND_ATTEMPTS = 4
# At most this long in retries (an attempt already under way finishes): the deliver function's
# timeout (30 s) holds a batch of messages, and a message cut off mid-call is left unknown.
SEND_BUDGET_S = 5.0


def refused_for_now(error: ClientError) -> bool:
    code, _, status = client_error_parts(error)
    return code in _REFUSED_FOR_NOW or status in (429, 503)


def server_failed(error: ClientError) -> bool:
    """A 5xx (other than 503) or an internal error: the provider may have taken the request."""
    code, _, status = client_error_parts(error)
    return not refused_for_now(error) and (code in _SERVER_FAILED or status >= 500)


def once(
    call: Callable[[], T],
    *,
    idempotent: bool = False,
    attempts: int = SEND_ATTEMPTS,
    budget_s: float = SEND_BUDGET_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`call` (a provider call made by a client without botocore retries), tried again only when
    that cannot make the provider act twice: the request never got through (no connection), or
    the provider refused it for now (throttling, 503). A lost answer (a read timeout, a
    connection closed mid-answer) or another server error is tried again only for an
    `idempotent` call: for a send the error goes up, and the classification marks it ambiguous.
    Retries stop after `budget_s`. The last error goes up as raised, for the caller to classify."""
    started = clock()
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            return call()
        except ClientError as error:
            if last or not (refused_for_now(error) or (idempotent and server_failed(error))):
                raise
            failure: Exception = error
        except _NOT_SENT as error:
            if last:
                raise
            failure = error
        except _ANSWER_LOST as error:
            if not idempotent or last:
                raise
            failure = error
        pause = min(1.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)  # jitter
        if clock() - started + pause > budget_s:
            raise failure
        sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


# ------------------------------------------------------------------------------------------------ email


# Control characters (but the tab) end a header line early: refused wherever a value becomes a header.
HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
