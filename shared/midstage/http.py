"""HTTP answers in API Gateway's payload format 2.0, shared by the HTTP handlers, and what the
admin routes read of a request: its JSON body (bounded in size and depth), page limits and
cursors, and If-Match."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from midstage.errors import InvalidInput, MidstageError, PayloadTooLarge, RateLimited, parse_body
from midstage.logic.text import json_safe, problem

M = TypeVar("M", bound=BaseModel)

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


# ---------------------------------------------------------------------------------- requests
MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 64
# A listing's page: `?limit=` from 1 to MAX_LIMIT, DEFAULT_LIMIT when not given.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Request(Protocol):
    """What the helpers read of a request (Powertools' API Gateway event classes have it)."""

    @property
    def body(self) -> str | None: ...
    @property
    def is_base64_encoded(self) -> bool | None: ...
    @property
    def headers(self) -> dict[str, str]: ...
    def get_query_string_value(self, name: str, default_value: str | None = None) -> str | None: ...


def nesting(value: Any) -> int:
    """How deeply a parsed JSON value nests (iteratively: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def body_text(request: Request, limit: int = MAX_BODY_BYTES) -> str:
    """The body as text. Read here rather than through `decoded_body`, which lets a body that
    is not UTF-8 escape as UnicodeDecodeError (a 500)."""
    body = request.body or ""
    try:
        raw = base64.b64decode(body, validate=True) if request.is_base64_encoded else body.encode("utf-8")
    except (binascii.Error, ValueError) as error:
        raise InvalidInput("the body is not valid base64", code="invalid_encoding") from error
    except UnicodeEncodeError as error:
        raise InvalidInput("the body is not UTF-8 text", code="invalid_json") from error
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is over the limit of {limit} bytes", code="body_too_large")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput("the body is not UTF-8 text", code="invalid_json") from error


def payload(request: Request, limit: int = MAX_BODY_BYTES, *, required: bool = True) -> Any:
    """The JSON body; refused when missing (unless optional), too large, not UTF-8, not JSON,
    too deeply nested for the checks that walk it (the C parser itself stops at Python's
    recursion limit with RecursionError), or holding what cannot be stored (text with unpaired
    surrogates, numbers that are not finite)."""
    text = body_text(request, limit)
    if not text.strip():
        if required:
            raise InvalidInput("this route needs a JSON body", code="empty_body")
        return None
    too_deep = InvalidInput(f"the body nests deeper than {MAX_JSON_DEPTH} levels", code="too_deeply_nested")
    try:
        document = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except ValueError as error:
        raise InvalidInput("the body is not valid JSON", code="invalid_json") from error
    if nesting(document) > MAX_JSON_DEPTH:
        raise too_deep
    found = problem(document)
    if found is not None:
        raise InvalidInput(found.message, code=found.code)
    return document


def body(request: Request, model: type[M], limit: int = MAX_BODY_BYTES, *, required: bool = True) -> M:
    """The body validated by `model`. An optional body that is absent means its defaults; a
    body that is there must be an object (`null` is not one)."""
    if not required and not body_text(request, limit).strip():
        return parse_body(model, {})
    document = payload(request, limit)
    if not isinstance(document, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_body")
    return parse_body(model, document)


def page_limit(request: Request, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    raw = request.get_query_string_value("limit", str(default)) or str(default)
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise InvalidInput(f"'limit' must be an integer from 1 to {maximum}", code="invalid_limit")
    return int(raw)


def cursor(request: Request) -> str | None:
    return request.get_query_string_value("cursor") or None


def if_match(request: Request) -> int | None:
    """The version an edit expects to replace (`If-Match: 3`, `"3"` or `W/"3"`), if given."""
    raw = (request.headers or {}).get("if-match")
    if raw is None:
        return None
    text = raw.strip().removeprefix("W/").strip('"')
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise InvalidInput("If-Match must be the version number being replaced, e.g. 3", code="invalid_if_match")
    return int(text)
