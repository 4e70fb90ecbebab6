"""Where moto is looser than AWS in ways our invariants depend on, the local cloud tightens it.

DynamoDB makes each item write (and each transaction) atomic: a condition is checked and the
write applied with no other writer in between. moto's backend takes no lock, so two threads of
its server can both pass `version = :v` and both write. The profile updater's correctness
rests on that atomicity, so every item operation of the backend runs under one lock here.

SES refuses to send with a configuration set that does not exist (v2: NotFoundException, v1:
ConfigurationSetDoesNotExist); moto ignores the name. A misspelt set would lose every sending
event on AWS, so the local cloud refuses it too.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

_ITEM_OPERATIONS = (
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)
_lock = threading.RLock()
_applied = False
_ses_applied = False


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    return run


def make_dynamodb_atomic() -> None:
    """Serialise moto's DynamoDB item operations (idempotent; process-wide)."""
    global _applied
    if _applied:
        return
    for name in _ITEM_OPERATIONS:
        setattr(DynamoDBBackend, name, _locked(getattr(DynamoDBBackend, name)))
    _applied = True


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
    _ses_applied = True
