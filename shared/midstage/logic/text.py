"""What can be stored and answered: text that encodes as UTF-8 and numbers that JSON can carry.

JSON itself lets through two things the rest of the platform cannot hold: strings with an
unpaired surrogate (`"\\ud800"` is a valid JSON escape, but no UTF-8 encoder accepts it, so
DynamoDB, SQS and every UTF-8 writer refuse it) and numbers that are not finite (`1e999999`
parses as infinity; Python's parser also takes the `NaN` and `Infinity` literals, which are not
JSON at all and which a browser's `JSON.parse` refuses). Input is checked once, where it enters,
so that nothing behind an acknowledgement can fail on it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

_SHOWN_PATH = 200


@dataclass(frozen=True)
class Problem:
    """The first value found that cannot be stored: a machine code, where, and why."""

    code: str
    path: str  # dotted, e.g. `properties.items.2.name`; empty for the value itself
    message: str


def storable(value: Any) -> bool:
    """True when `value` encodes as strict JSON in UTF-8. Runs at C speed (the encoder does the
    walk); `problem()` says what is wrong when it is not."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    except (TypeError, RecursionError):
        return problem(value) is None
    return True


def problem(value: Any) -> Problem | None:
    """The first unpaired surrogate (in a key or a string) or non-finite number in a JSON value,
    depth first; walked iteratively so that hostile nesting cannot exhaust the stack."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if not _encodes(node):
                return _text_problem(path, "a string")
        elif isinstance(node, float):
            if not math.isfinite(node):
                where = _dotted(path) or "the value"
                message = f"{where}: {node!r} is not a finite number JSON can carry"
                return Problem(code="invalid_number", path=_dotted(path), message=message)
        elif isinstance(node, dict):
            children: list[tuple[Any, tuple[str, ...]]] = []
            for key, child in node.items():
                step = key if isinstance(key, str) else str(key)
                if not _encodes(step):
                    return _text_problem((*path, step), "a key")
                children.append((child, (*path, step)))
            stack.extend(reversed(children))
        elif isinstance(node, list | tuple):
            stack.extend(reversed([(child, (*path, str(index))) for index, child in enumerate(node)]))
    return None


def printable(text: str) -> str:
    """`text` with unpaired surrogates written as `\\udXXX` escapes: safe to store and to show."""
    return text if _encodes(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_safe(value: Any) -> Any:
    """A copy of `value` that strict JSON can carry: non-finite numbers become null and unpaired
    surrogates are escaped. For answering with data stored before the intake checks existed."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {printable(k) if isinstance(k, str) else k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_problem(path: tuple[str, ...], what: str) -> Problem:
    dotted = _dotted(path)
    where = dotted or "the value"
    message = (
        f"{where}: {what} with an unpaired surrogate (e.g. \\ud800) is not text that can be stored; "
        "send well-formed Unicode"
    )
    return Problem(code="invalid_text", path=dotted, message=message)


def _dotted(path: tuple[str, ...]) -> str:
    return printable(".".join(path))[:_SHOWN_PATH]
