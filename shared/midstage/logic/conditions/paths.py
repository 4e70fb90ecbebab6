"""Paths: a dotted or list path checked against the roots a condition may read, and resolved
once into a getter over `Facts`.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from midstage.logic.conditions.model import MAX_PATH_SEGMENTS, Facts, Getter
from midstage.logic.conditions.values import json_type

_ROOTS = ("event", "traits", "computed", "profile", "predicted", "tags", "segments", "identities")
# `predicted.<score>` is the score's value, `predicted.<score>.percentile` its rank (docs/predictions.md).
_PREDICTED_FIELDS = ("value", "percentile", "model")
_EVENT_FIELDS = {
    "name": "string",
    "type": "string",
    "timestamp": "time",
    "messageId": "string",
    "userId": "string",
    "anonymousId": "string",
}
_PROFILE_FIELDS = {
    "id": "string",
    "created_at": "time",
    "first_seen": "time",
    "last_seen": "time",
    "first_order_at": "time",
    "last_order_at": "time",
    "orders": "number",
    "revenue": "number",
}
_SEGMENT = re.compile(r"[A-Za-z0-9_$-]+")


_BRACKETED = json.JSONDecoder()


# ----------------------------------------------------------------------------------------- paths
class ResolvedPath(NamedTuple):
    label: str  # canonical text, also what explain shows
    kind: str  # any | number | string | time | list
    get: Getter  # None when missing


def split_path(raw: Any) -> tuple[list[str] | None, str]:
    """Segments of a string or list path, or None and why not."""
    if isinstance(raw, list):
        if not 1 <= len(raw) <= MAX_PATH_SEGMENTS:
            return None, f"a path has 1 to {MAX_PATH_SEGMENTS} segments"
        for segment in raw:
            if not isinstance(segment, str) or not 1 <= len(segment) <= 256:
                return None, "each segment of a list path is a string of 1 to 256 characters"
        return list(raw), ""
    if not isinstance(raw, str):
        return None, f"a path is a dotted string or a list of segments, not {json_type(raw)}"
    if not raw or len(raw) > MAX_PATH_SEGMENTS * 260:
        return None, "a path is a non-empty dotted string, like traits.plan"
    segments: list[str] = []
    at = 0
    while True:
        if raw.startswith("[", at):
            try:
                segment, end = _BRACKETED.raw_decode(raw, at + 1)
            except ValueError:
                return None, f"bad path {raw!r}: after '[' comes a JSON string, like [\"Order Completed\"]"
            if not isinstance(segment, str) or not raw.startswith("]", end) or not 1 <= len(segment) <= 256:
                return None, f'bad path {raw!r}: a bracketed segment is ["text"] of 1 to 256 characters'
            at = end + 1
        else:
            match = _SEGMENT.match(raw, at)
            if match is None or len(match.group()) > 64:
                return None, f'bad path {raw!r}: segments are 1 to 64 of A-Z a-z 0-9 _ $ - (or ["any text"])'
            segment, at = match.group(), match.end()
        segments.append(segment)
        if len(segments) > MAX_PATH_SEGMENTS:
            return None, f"bad path {raw!r}: at most {MAX_PATH_SEGMENTS} segments"
        if at == len(raw):
            return segments, ""
        if raw.startswith(".", at) and at + 1 < len(raw):
            at += 1
        elif not raw.startswith("[", at):
            return None, f"bad path {raw!r}: unexpected {raw[at]!r} at character {at + 1}"


def render_path(segments: Sequence[str]) -> str:
    text = ""
    for segment in segments:
        if _SEGMENT.fullmatch(segment) and len(segment) <= 64:
            text += f".{segment}" if text else segment
        else:
            text += f"[{json.dumps(segment)}]"
    return text


def _dig(current: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if type(current) is dict or isinstance(current, Mapping):
            current = current.get(key)
        else:
            return None
    return current


def resolve_path(segments: list[str]) -> tuple[ResolvedPath | None, str]:
    root, rest = segments[0], tuple(segments[1:])
    label = render_path(segments)
    if root == "event":
        if not rest:
            return None, "event needs a field: name, type, timestamp, properties.<key> or context.<key>"
        field, keys = rest[0], rest[1:]
        if field in ("properties", "context"):
            return ResolvedPath(label, "any", _event_dict_getter(field, keys)), ""
        if field in _EVENT_FIELDS and not keys:
            return ResolvedPath(label, _EVENT_FIELDS[field], _event_field_getter(field)), ""
        return None, f"unknown event field in {label}; known: {', '.join(_EVENT_FIELDS)}, properties.*, context.*"
    if root in ("traits", "computed"):
        if not rest:
            return None, f"{root} needs a key, like {root}.plan"
        return ResolvedPath(label, "any", _profile_dict_getter(root, rest)), ""
    if root == "predicted":
        if not rest or len(rest) > 2 or (len(rest) == 2 and rest[1] not in _PREDICTED_FIELDS):
            return None, "predicted needs a score and optionally its percentile, like predicted.churn_risk.percentile"
        keys = ("predicted", rest[0], rest[1] if len(rest) == 2 else "value")
        return ResolvedPath(label, "any", _profile_dict_getter("traits", keys)), ""
    if root == "profile":
        if len(rest) != 1 or rest[0] not in _PROFILE_FIELDS:
            return None, f"profile fields are: {', '.join(_PROFILE_FIELDS)}"
        return ResolvedPath(label, _PROFILE_FIELDS[rest[0]], _profile_field_getter(rest[0])), ""
    if root in ("tags", "segments"):
        if rest:
            return None, f"{root} is a list of strings and has no fields"
        return ResolvedPath(label, "list", _tags if root == "tags" else _segments), ""
    if root == "identities":
        if len(rest) != 1:
            return None, "identities needs one type, like identities.email"
        return ResolvedPath(label, "list", _identity_getter(rest[0])), ""
    return None, f"unknown root {root!r}; a path starts with one of: {', '.join(_ROOTS)}"


def _event_field_getter(field: str) -> Getter:
    if field == "name":

        def get_name(facts: Facts) -> Any:
            event = facts.event
            if event is None:
                return None
            name = event.get("event")  # a track call's name; page and screen calls have `name`
            return name if name is not None else event.get("name")

        return get_name

    def get(facts: Facts) -> Any:
        event = facts.event
        return None if event is None else event.get(field)

    return get


def _event_dict_getter(field: str, keys: tuple[str, ...]) -> Getter:
    if len(keys) == 1:
        key = keys[0]

        def get_one(facts: Facts) -> Any:
            event = facts.event
            if event is None:
                return None
            found = event.get(field)
            return found.get(key) if type(found) is dict else _dig(found, keys)

        return get_one

    def get(facts: Facts) -> Any:
        event = facts.event
        return None if event is None else _dig(event.get(field), keys)

    return get


def _profile_dict_getter(root: str, keys: tuple[str, ...]) -> Getter:
    container = operator.attrgetter(root)
    if len(keys) == 1:
        key = keys[0]

        def get_one(facts: Facts) -> Any:
            profile = facts.profile
            return None if profile is None else container(profile).get(key)

        return get_one

    def get(facts: Facts) -> Any:
        profile = facts.profile
        return None if profile is None else _dig(container(profile), keys)

    return get


def _profile_field_getter(field: str) -> Getter:
    if field == "revenue":

        def get_revenue(facts: Facts) -> Any:
            profile = facts.profile
            if profile is None:
                return None
            try:
                return float(profile.revenue)
            except (TypeError, ValueError):
                return None

        return get_revenue
    attribute = operator.attrgetter(field)

    def get(facts: Facts) -> Any:
        profile = facts.profile
        return None if profile is None else attribute(profile)

    return get


def _tags(facts: Facts) -> Any:
    profile = facts.profile
    return (profile.tags or None) if profile is not None else None


def _segments(facts: Facts) -> Any:
    if facts.segments is not None:
        return facts.segments or None
    profile = facts.profile
    return (frozenset(profile.segments) or None) if profile is not None else None


def _identity_getter(id_type: str) -> Getter:
    def get(facts: Facts) -> Any:
        profile = facts.profile
        return (profile.identities.get(id_type) or None) if profile is not None else None

    return get
