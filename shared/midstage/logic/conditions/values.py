"""Values as conditions read them at run time: ISO timestamps (parses kept), numeric text,
durations, and how a value is named in an issue or a trace.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

_MAX_DURATION = timedelta(days=36_500)  # keeps now - duration far from datetime's limits


DURATION = re.compile(r"([1-9][0-9]{0,5})([mhdw])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_ISO_SHAPE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?"
).fullmatch


_NUMERIC_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?").fullmatch

_TIMES: dict[str, datetime | None] = {}
_MAX_TIMES = 4096


# ------------------------------------------------------------------------------ values at run time
def parse_time(value: Any) -> datetime | None:
    """An ISO timestamp string as an aware datetime; anything else is None."""
    if type(value) is not str or len(value) > 32:  # 32: YYYY-MM-DDThh:mm:ss.ffffff+hh:mm
        return None
    # Many rules read the same few timestamps (last_order_at, the event's), so parses are kept.
    try:
        return _TIMES[value]
    except KeyError:
        pass
    moment: datetime | None = None
    if _ISO_SHAPE(value) is not None:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:  # the right shape but not a date, like 2026-02-30
            moment = None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    if len(_TIMES) >= _MAX_TIMES:
        _TIMES.clear()
    _TIMES[value] = moment
    return moment


def numeric_text(value: str) -> float | None:
    if len(value) > 64 or _NUMERIC_TEXT(value) is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def is_number(value: Any) -> bool:
    return (type(value) is int) or (type(value) is float and math.isfinite(value))


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def show(value: Any, limit: int = 80) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, frozenset | set):
        value = sorted(value, key=str)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plain(value: Any) -> Any:
    """A value for the explain trace, as JSON can carry it."""
    if isinstance(value, frozenset | set):
        return sorted(value, key=str)
    return value


def pointer(location: str, key: Any) -> str:
    return f"{location}/{str(key).replace('~', '~0').replace('/', '~1')}"


def duration(value: Any) -> timedelta | None:
    if not isinstance(value, str):
        return None
    match = DURATION.fullmatch(value)
    if match is None:
        return None
    span = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return span if span <= _MAX_DURATION else None
