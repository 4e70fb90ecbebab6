"""What a provider failure means for the caller: retry, give up on the message, or fix the account."""

from __future__ import annotations

import re

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, ParamValidationError

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
    # Connection failures and timeouts: botocore already retried, the next attempt may get through.
    return ProviderError(RETRYABLE, f"{service} unreachable: {brief(str(error))}", type(error).__name__)


# ------------------------------------------------------------------------------------------------ email


# Control characters (but the tab) end a header line early: refused wherever a value becomes a header.
HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
