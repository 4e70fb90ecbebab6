"""HTTP answers in API Gateway's payload format 2.0, shared by the HTTP handlers."""

from __future__ import annotations

import json
from typing import Any

from midstage.errors import MidstageError, RateLimited

JSON_HEADERS = {"content-type": "application/json"}


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {**JSON_HEADERS, **(headers or {})},
        "body": json.dumps(body, separators=(",", ":"), default=str),
    }


def error_answer(error: MidstageError) -> dict[str, Any]:
    headers = {"retry-after": str(error.retry_after_s)} if isinstance(error, RateLimited) else None
    if error.status == 503:
        headers = {"retry-after": "1"}
    return answer(error.status, error.to_body(), headers)
