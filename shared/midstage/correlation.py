"""Where a correlation id comes from, and what makes one fit to copy downstream.

One id follows a piece of work from its start (an HTTP request or a schedule's firing) through
every queue message and domain event to the provider call, and is on every log line on the
way, so that one search finds everything one request caused."""

from __future__ import annotations

from typing import Any

HEADER = "x-correlation-id"
ATTRIBUTE = "correlationId"  # the SQS message attribute, and the key in a domain event's envelope
# A correlation id is copied onto every message and log line downstream: bounded, and limited
# to characters that need no escaping wherever it is written.
MAX_CHARS = 128


def clean(value: Any) -> str | None:
    """The id if it is fit to copy (printable ASCII without spaces, quotes or backslashes, at
    most MAX_CHARS), else None (the caller falls back to an id of its own)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > MAX_CHARS:
        return None
    if any(not 33 <= ord(c) <= 126 or c in "\"'\\" for c in value):
        return None
    return value


def from_http(event: Any) -> str | None:
    """An HTTP API request's id: the caller's `x-correlation-id` header when it is fit to copy,
    else API Gateway's request id."""
    if not isinstance(event, dict):
        return None
    headers = event.get("headers")
    if isinstance(headers, dict):
        for name, value in headers.items():
            if isinstance(name, str) and name.lower() == HEADER:
                given = clean(value)
                if given:
                    return given
    context = event.get("requestContext")
    return clean(context.get("requestId")) if isinstance(context, dict) else None


def from_schedule(event: Any, fallback: str | None) -> str | None:
    """A scheduled invocation's id: the EventBridge event id of the firing when there is one,
    else `fallback` (the invocation's request id: Scheduler's own input carries no id)."""
    if isinstance(event, dict):
        given = clean(event.get("id"))
        if given:
            return given
    return clean(fallback)


def from_record(record: Any) -> str | None:
    """An SQS record's id, from its `correlationId` message attribute (Lambda's event shape)."""
    attributes = getattr(record, "message_attributes", None)
    if attributes is None and isinstance(record, dict):
        attributes = record.get("messageAttributes")
    if attributes is None or not hasattr(attributes, "get"):
        return None
    attribute = attributes.get(ATTRIBUTE)
    if attribute is None:
        return None
    value = attribute.get("stringValue") if hasattr(attribute, "get") else getattr(attribute, "string_value", None)
    return clean(value)


def sqs_attributes(correlation_id: str | None) -> dict[str, Any]:
    """The SQS MessageAttributes carrying an id (none without one)."""
    if not correlation_id:
        return {}
    return {ATTRIBUTE: {"DataType": "String", "StringValue": correlation_id}}
