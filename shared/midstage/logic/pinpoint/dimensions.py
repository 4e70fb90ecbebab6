"""Pinpoint's filters (`SegmentDimensions`, `EventDimensions`) as conditions in Midstage's
condition language.

A person's side of it reads what `pinpoint-import` made of each endpoint: user and endpoint
attributes are traits of the same name, `Location.Country` the `country` trait, an EMAIL
endpoint the `email` identifier, an SMS or VOICE one the `phone` identifier. What the import
does not keep (platform, make, model, app version, GPS position, endpoint metrics, push
channels) cannot be tested, and is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from midstage.logic.imports.phones import ALPHA3_TO_ALPHA2
from midstage.logic.pinpoint.common import Note, trait_path

Condition = dict[str, Any]

RECENCY = {"HR_24": "24h", "DAY_7": "7d", "DAY_14": "14d", "DAY_30": "30d"}
CHANNEL_IDENTIFIERS = {"EMAIL": "email", "SMS": "phone", "VOICE": "phone"}
PUSH_CHANNELS = frozenset({"APNS", "APNS_SANDBOX", "APNS_VOIP", "APNS_VOIP_SANDBOX", "GCM", "BAIDU", "ADM"})
METRIC_OPERATORS = {
    "GREATER_THAN": "gt",
    "GREATER_THAN_OR_EQUAL": "gte",
    "LESS_THAN": "lt",
    "LESS_THAN_OR_EQUAL": "lte",
    "EQUAL": "eq",
}
NOT_KEPT = (
    "the endpoint import does not keep it on the profile, so no condition can test it; if your apps "
    "send it as a trait, add a condition on that trait by hand"
)
WIDER = "left out: the converted segment matches more people than Pinpoint's until a condition replaces it"


def combine(how: str, conditions: list[Condition]) -> Condition | None:
    """ALL, ANY or NONE of the conditions as one (None when there are none)."""
    if not conditions:
        return None
    if how == "ANY":
        return conditions[0] if len(conditions) == 1 else {"any": conditions}
    if how == "NONE":
        return {"not": conditions[0] if len(conditions) == 1 else {"any": conditions}}
    return conditions[0] if len(conditions) == 1 else {"all": conditions}


def _negated(condition: Condition, dimension_type: Any) -> Condition:
    return {"not": condition} if dimension_type == "EXCLUSIVE" else condition


def person_dimensions(dimensions: Mapping[str, Any], at: str, notes: list[Note]) -> list[Condition]:
    """The conditions a `SegmentDimensions` makes (all of them must hold), with a note for each
    filter that could not be translated (and is left out)."""
    conditions: list[Condition] = []
    demographic = dimensions.get("Demographic") or {}
    for name, dimension in demographic.items():
        where = f"{at}/Demographic/{name}"
        if name == "Channel":
            found = _channel(dimension, where, notes)
            if found is not None:
                conditions.append(found)
        else:
            notes.append(
                Note(where, f"{name} ({', '.join(map(str, dimension.get('Values') or []))}): {NOT_KEPT}; {WIDER}")
            )
    location = dimensions.get("Location") or {}
    if "Country" in location:
        country = location["Country"]
        values = country_forms([str(v) for v in country.get("Values") or []])
        if values:
            test = {"path": "traits.country", "op": "in", "value": values}
            conditions.append(_negated(test, country.get("DimensionType")))
    if "GPSPoint" in location:
        notes.append(
            Note(f"{at}/Location/GPSPoint", f"a distance from a point: {NOT_KEPT} (latitude and longitude); {WIDER}")
        )
    recency = (dimensions.get("Behavior") or {}).get("Recency")
    if recency:
        conditions.append(_recency(recency, f"{at}/Behavior/Recency", notes))
    for section in ("UserAttributes", "Attributes"):
        for name, dimension in (dimensions.get(section) or {}).items():
            where = f"{at}/{section}/{name}"
            found = attribute(trait_path(str(name)), dimension, where, notes)
            if found is not None:
                conditions.append(found)
    for name in dimensions.get("Metrics") or {}:
        where = f"{at}/Metrics/{name}"
        notes.append(Note(where, f"endpoint metric {name}: {NOT_KEPT}; {WIDER}"))
    return conditions


_ALPHA2_TO_ALPHA3 = {two: three for three, two in ALPHA3_TO_ALPHA2.items()}


def country_forms(values: list[str]) -> list[str]:
    """Each country as given and in both ISO 3166-1 forms: the import keeps an endpoint's
    `Location.Country` as the endpoint wrote it, alpha-2 (`CA`) or alpha-3 (`CAN`)."""
    forms: list[str] = []
    for value in values:
        code = value.strip().upper()
        other = ALPHA3_TO_ALPHA2.get(code) if len(code) == 3 else _ALPHA2_TO_ALPHA3.get(code)
        forms += [f for f in (value, code, other) if f and f not in forms]
    return forms


def _channel(dimension: Mapping[str, Any], where: str, notes: list[Note]) -> Condition | None:
    tests: list[Condition] = []
    identifiers: list[str] = []
    for value in dimension.get("Values") or []:
        identifier = CHANNEL_IDENTIFIERS.get(str(value))
        if identifier is not None and identifier not in identifiers:
            identifiers.append(identifier)
        elif identifier is None:
            why = "push endpoints become devices, which conditions cannot test" if value in PUSH_CHANNELS else NOT_KEPT
            notes.append(Note(where, f"channel {value}: {why}; {WIDER}"))
    tests = [{"path": f"identities.{i}", "op": "exists", "value": True} for i in identifiers]
    found = combine("ANY", tests)
    return None if found is None else _negated(found, dimension.get("DimensionType"))


def _recency(recency: Mapping[str, Any], where: str, notes: list[Note]) -> Condition:
    window = RECENCY.get(str(recency.get("Duration")), "30d")
    active = recency.get("RecencyType") != "INACTIVE"
    notes.append(
        Note(
            where,
            "activity is the person's last event (profile.last_seen), not an endpoint's last session; imported "
            "people have none until their first event reaches Midstage, so they match neither active nor inactive",
        )
    )
    op = "within_last" if active else "not_within_last"
    return {"path": "profile.last_seen", "op": op, "value": window}


def attribute(path: list[str] | None, dimension: Mapping[str, Any], where: str, notes: list[Note]) -> Condition | None:
    """An `AttributeDimension` on `path` (a trait, or an event property)."""
    if path is None:
        notes.append(Note(where, f"the attribute name cannot be a trait or property name; {WIDER}"))
        return None
    kind = str(dimension.get("AttributeType") or "INCLUSIVE")
    values = [str(v) for v in dimension.get("Values") or []]
    if not values:
        notes.append(Note(where, f"no values; {WIDER}"))
        return None
    if kind in ("INCLUSIVE", "EXCLUSIVE"):
        return _negated(one_of(path, values), kind)
    if kind == "CONTAINS":
        return combine("ANY", [{"path": path, "op": "contains", "value": v} for v in values])
    moments = [_moment(v) for v in values]
    if None in moments:
        notes.append(Note(where, f"{kind} takes ISO 8601 dates, not {values}; {WIDER}"))
        return None
    if kind in ("BEFORE", "AFTER"):
        return {"path": path, "op": kind.lower(), "value": moments[0]}
    if kind == "BETWEEN" and len(values) >= 2:
        return {"path": path, "op": "between", "value": [moments[0], moments[1]]}
    if kind == "ON":
        day = date.fromisoformat(str(moments[0])[:10])
        return {
            "all": [
                {"path": path, "op": "gte", "value": f"{day.isoformat()}T00:00:00Z"},
                {"path": path, "op": "lt", "value": f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z"},
            ]
        }
    notes.append(Note(where, f"attribute type {kind} is not known; {WIDER}"))
    return None


def one_of(path: list[str], values: list[str]) -> Condition:
    """The attribute has one of the values. Pinpoint attributes are lists; the import made a
    one-value list a plain trait and kept longer ones as lists, so: a trait equal to a value, or
    a list trait holding one (`contains` on a list; the regex "^" matches any text, so its
    negation keeps `contains` from reading a plain trait as a substring)."""
    held = [{"path": path, "op": "contains", "value": v} for v in values]
    listed = held[0] if len(held) == 1 else {"any": held}
    is_list = {"not": {"path": path, "op": "regex", "value": "^"}}
    return {"any": [{"path": path, "op": "in", "value": values}, {"all": [is_list, listed]}]}


def _moment(value: str) -> str | None:
    """A Pinpoint date value as an ISO timestamp the condition language reads (UTC if no zone)."""
    text = value.strip()
    try:
        date.fromisoformat(text[:10])
    except ValueError:
        return None
    if len(text) == 10:
        return f"{text}T00:00:00Z"
    return text


def event_dimensions(dimensions: Mapping[str, Any], at: str, notes: list[Note]) -> tuple[list[str], list[Condition]]:
    """An `EventDimensions`: the event names it accepts (none: any) and the conditions on the
    event's properties (`Attributes` and `Metrics` are both event properties)."""
    names: list[str] = []
    conditions: list[Condition] = []
    event_type = dimensions.get("EventType") or {}
    values = [str(v) for v in event_type.get("Values") or []]
    if values and event_type.get("DimensionType") == "EXCLUSIVE":
        conditions.append({"not": {"path": "event.name", "op": "in", "value": values}})
    else:
        names = values
    for name, dimension in (dimensions.get("Attributes") or {}).items():
        found = attribute(["event", "properties", str(name)], dimension, f"{at}/Attributes/{name}", notes)
        if found is not None:
            conditions.append(found)
    for name, metric in (dimensions.get("Metrics") or {}).items():
        where = f"{at}/Metrics/{name}"
        op = METRIC_OPERATORS.get(str(metric.get("ComparisonOperator")))
        value = metric.get("Value")
        if op is None or not isinstance(value, int | float) or isinstance(value, bool):
            notes.append(Note(where, f"comparison {metric.get('ComparisonOperator')!r} is not one Pinpoint documents"))
            continue
        conditions.append({"path": ["event", "properties", str(name)], "op": op, "value": value})
    return names, conditions
