"""Where moto is looser than AWS in ways our invariants depend on, the local cloud tightens it.

DynamoDB makes each item write (and each transaction) atomic, and its costs follow the items a
request touches, not the size of the table: see `dynamodb_engine.py`, installed here. SQS is safe
under concurrent requests and costs the same per message whatever the backlog: `sqs_engine.py`.

SES refuses to send with a configuration set that does not exist (v2: NotFoundException, v1:
ConfigurationSetDoesNotExist); moto ignores the name. A misspelt set would lose every sending
event on AWS, so the local cloud refuses it too.

SES's GetSendQuota says the account's MaxSendRate, which delivery paces itself to; moto always
answers a sandbox account's 1 a second. The local cloud answers a production account's rate
(LOCAL_SES_MAX_SEND_RATE), and a test sets the rate it means with `set_ses_send_rate`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from infra.localcloud import dynamodb_engine, sqs_engine

_ses_applied = False
LOCAL_SES_MAX_SEND_RATE = 200.0
LOCAL_SES_MAX_24_HOUR_SEND = 1_000_000.0
_ses_quota = {"rate": LOCAL_SES_MAX_SEND_RATE}


def make_dynamodb_atomic() -> None:
    """Make moto's DynamoDB atomic per item and transaction, at costs that follow what a request
    touches (idempotent; process-wide)."""
    dynamodb_engine.install()


def make_sqs_scalable() -> None:
    """Make moto's SQS thread-safe, with costs per message that do not grow with the backlog
    (idempotent; process-wide)."""
    sqs_engine.install()


def make_dispatch_cheaper() -> None:
    """moto's server lists its package directory on disk for every request to find the service it
    is for (`list_of_moto_modules`, an `isdir` per module): an eighth of its time per request. The
    list cannot change while the process runs; compute it once (idempotent; process-wide)."""
    from moto import backends

    if getattr(backends.list_of_moto_modules, "_localcloud_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules._localcloud_cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules
    _cache_jsonpath_parsing()


def _cache_jsonpath_parsing() -> None:
    """moto's EventBridge builds each event it hands a target from a template of eight JSONPath
    expressions, and parses each one anew (jsonpath_ng builds a yacc parser per call): a sixth of
    the local cloud's time under load went there. Parsed expressions are immutable: keep them."""
    import jsonpath_ng.ext

    parse = jsonpath_ng.ext.parse
    if getattr(parse, "_localcloud_cached", False):
        return
    cached = functools.lru_cache(maxsize=1024)(parse)
    cached._localcloud_cached = True  # type: ignore[attr-defined]
    jsonpath_ng.ext.parse = cached


def make_ses_strict() -> None:
    """Make moto's SES refuse a ConfigurationSetName it does not hold (idempotent; process-wide)."""
    global _ses_applied
    if _ses_applied:
        return
    from moto.ses.exceptions import ConfigurationSetDoesNotExist, NotFoundException
    from moto.ses.responses import EmailResponse
    from moto.sesv2.responses import SESV2Response

    def checked_v2(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        @functools.wraps(handler)
        def run(response: Any) -> Any:
            name = json.loads(response.body or b"{}").get("ConfigurationSetName")
            if name and name not in response.sesv2_backend.core_backend.config_sets:
                raise NotFoundException(f"Configuration set <{name}> does not exist.")
            return handler(response)

        return run

    def checked_v1(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        @functools.wraps(handler)
        def run(response: Any) -> Any:
            name = response._get_param("ConfigurationSetName")
            if name and name not in response.backend.config_sets:
                raise ConfigurationSetDoesNotExist(f"Configuration set <{name}> does not exist.")
            return handler(response)

        return run

    SESV2Response.send_email = checked_v2(SESV2Response.send_email)  # type: ignore[method-assign,assignment]
    for name in ("send_email", "send_raw_email", "send_templated_email"):
        setattr(EmailResponse, name, checked_v1(getattr(EmailResponse, name)))
    set_ses_send_rate(LOCAL_SES_MAX_SEND_RATE)
    _ses_applied = True


def set_ses_send_rate(max_send_rate: float) -> None:
    """Make moto's GetSendQuota answer this MaxSendRate (and a production account's daily quota);
    process-wide, until set again."""
    from moto.ses.models import SESBackend, SESQuota

    _ses_quota["rate"] = max_send_rate
    if getattr(SESBackend.get_send_quota, "_localcloud", False):
        return

    def get_send_quota(self: Any) -> Any:
        quota = SESQuota(self.sent_message_count)
        quota.max_send_rate = _ses_quota["rate"]  # type: ignore[assignment]
        quota.max24_hour_send = LOCAL_SES_MAX_24_HOUR_SEND  # type: ignore[assignment]
        return quota

    get_send_quota._localcloud = True  # type: ignore[attr-defined]
    SESBackend.get_send_quota = get_send_quota  # type: ignore[method-assign]
