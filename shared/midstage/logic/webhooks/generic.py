"""Generic webhooks: any JSON body to identify / track calls by a source's JMESPath mapping
(models/webhooks.py), authenticated by an HMAC of the body in a named header or a bearer token.

A call whose dedupe id evaluates to nothing is not made but kept in quarantine with the reason:
without that id a redelivery would count twice.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from midstage.errors import Unauthorized
from midstage.logic.webhooks import Failed, Mapped, required_header, same_digest, sign
from midstage.models.webhooks import CallMapping, WebhookAuth, WebhookMapping

MAX_ITEMS = 500  # calls one `each` may make from one delivery


@lru_cache(maxsize=1024)
def _compiled(expression: str) -> ParsedResult:
    return jmespath.compile(expression)


def verify(auth: WebhookAuth, secret: str, raw: bytes, headers: Mapping[str, str]) -> None:
    if auth.type == "bearer":
        given = required_header(headers, "Authorization")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), secret.encode()):
            raise Unauthorized("the bearer token is not this source's", code="invalid_signature")
        return
    assert auth.header is not None  # an hmac authentication names it (models/webhooks.py)
    given = required_header(headers, auth.header)
    if auth.prefix:
        if not given.startswith(auth.prefix):
            raise Unauthorized(
                f"the {auth.header} header does not start with '{auth.prefix}'", code="invalid_signature"
            )
        given = given[len(auth.prefix) :]
    if not same_digest(sign(secret, raw), given, auth.encoding):
        raise Unauthorized(f"the {auth.header} signature does not match the body", code="invalid_signature")


def calls(mapping: WebhookMapping, body: Any) -> Mapped:
    made: list[dict[str, Any] | Failed] = []
    for number, call in enumerate(mapping.calls):
        items = [body] if call.each is None else _search(call.each, body)
        if not isinstance(items, list):
            continue
        for item in items[:MAX_ITEMS]:
            if call.when is not None and not _search(call.when, item):
                continue
            made.append(_call(call, number, item))
    if not made:
        return Mapped(ignored="the mapping makes no call from this body", topic="")
    return Mapped(calls=made, topic="")


def _call(call: CallMapping, number: int, item: Any) -> dict[str, Any] | Failed:
    message_id = _search(call.messageId, item)
    if message_id is None or message_id == "" or isinstance(message_id, dict | list | bool):
        return Failed(
            code="missing_message_id",
            message=f"calls[{number}].messageId ({call.messageId}) gives no id to dedupe by",
            payload=item,
        )
    made: dict[str, Any] = {
        "type": call.type,
        # Per mapped call: one delivery may make an identify and a track with the same id.
        "messageId": f"{number}:{message_id}",
        "context": {"integration": {"name": "webhook"}},
    }
    for name in ("userId", "anonymousId"):
        expression = getattr(call, name)
        value = _search(expression, item) if expression else None
        if value is not None:
            made[name] = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if call.event is not None:
        made["event"] = _search(call.event, item)
    if call.timestamp is not None:
        stamp = _timestamp(_search(call.timestamp, item))
        if stamp is not None:
            made["timestamp"] = stamp
    for name in ("traits", "properties"):
        fields = getattr(call, name)
        if fields is not None:
            made[name] = _object(fields, item)
    return made


def _object(fields: dict[str, str] | str, item: Any) -> Any:
    if isinstance(fields, str):
        return _search(fields, item)
    found = {name: _search(expression, item) for name, expression in fields.items()}
    return {name: value for name, value in found.items() if value is not None}


def _timestamp(value: Any) -> Any:
    """ISO 8601 as given; a number as Unix time, in milliseconds when it is that large."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) >= 100_000_000_000 else value
        try:
            return datetime.fromtimestamp(seconds, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            return value
    return value


def _search(expression: str, data: Any) -> Any:
    try:
        return _compiled(expression).search(data)
    except JMESPathError:
        # An expression that compiled can still fail on a body's types (a function given a
        # number for a string): that field is then absent, as a path that leads nowhere is.
        return None
