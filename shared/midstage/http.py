"""HTTP answers in API Gateway's payload format 2.0, shared by the HTTP handlers."""

from __future__ import annotations

import json
from typing import Any

from midstage.errors import MidstageError, RateLimited
from midstage.logic.text import json_safe

JSON_HEADERS = {"content-type": "application/json"}


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"statusCode": status, "headers": {**JSON_HEADERS, **(headers or {})}, "body": to_json(body)}


def to_json(body: Any) -> str:
    """Strict JSON, always: what `JSON.parse` accepts. Intake refuses non-finite numbers, but data
    stored before it did may still hold them; they are answered as null rather than `NaN`."""
    try:
        return json.dumps(body, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:
        return json.dumps(json_safe(body), separators=(",", ":"), default=str, allow_nan=False)


def error_answer(error: MidstageError) -> dict[str, Any]:
    headers = {"retry-after": str(error.retry_after_s)} if isinstance(error, RateLimited) else None
    if error.status == 503:
        headers = {"retry-after": "1"}
    return answer(error.status, error.to_body(), headers)
