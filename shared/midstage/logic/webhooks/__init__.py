"""Inbound webhooks: what a provider's signed delivery says, as Segment-spec calls.

Each provider has its module (shopify, stripe, generic): a `verify` over the raw body and the
headers, and a `calls` from the parsed body to identify / track calls. Everything here is pure:
the clock is an argument, and the calls then go through the tracking API's own intake
(services/webhooks.py), so they are validated, quarantined and handed off as any other call.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from midstage.errors import InvalidInput, Unauthorized


@dataclass(frozen=True)
class Failed:
    """A call the body should have made but could not (kept in quarantine with the reason)."""

    code: str
    message: str
    payload: Any


@dataclass
class Mapped:
    """What one delivery makes: calls for the intake, failures for quarantine, or nothing and why."""

    calls: list[dict[str, Any] | Failed] = field(default_factory=list)
    ignored: str | None = None
    topic: str = ""


def sign(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def same_digest(expected: bytes, given: str, encoding: str) -> bool:
    """Whether `given` (hex or base64 text) is `expected`, compared in constant time."""
    try:
        decoded = bytes.fromhex(given.strip()) if encoding == "hex" else base64.b64decode(given.strip(), validate=True)
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(expected, decoded)


def required_header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if not value:
        raise Unauthorized(f"the {name} header is missing", code="missing_signature")
    return value


def parse(raw: bytes) -> Any:
    """The body as JSON (after the signature is checked: an unsigned body is never parsed)."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidInput(f"the body is not valid JSON: {error}", code="invalid_json") from error
    except RecursionError as error:
        raise InvalidInput("the body nests too deeply", code="invalid_json") from error


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def number(value: Any) -> float | None:
    """A money amount given as text ("19.99", as Shopify sends it) or a number, as a JSON number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return float(amount) if amount.is_finite() else None


def text(value: Any) -> str | None:
    """An id as text (providers send numeric ids; Segment's ids are strings)."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    return str(value)


def iso_from_unix(seconds: Any) -> str | None:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (a provider's optional nested object)."""
    return value if isinstance(value, dict) else {}


def present(values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries that say something (providers send nulls and empty strings for the unknown)."""
    return {k: v for k, v in values.items() if v is not None and v != "" and v != [] and v != {}}


def integration(name: str) -> dict[str, Any]:
    """The context every call made from a provider's webhook carries (as Segment's sources set it)."""
    return {"integration": {"name": name}}
