"""Pinpoint segments (`SegmentResponse`) as Midstage segments.

A dimensional segment becomes a dynamic segment: its `Dimensions` and its `SegmentGroups`
(each group: its source segments, combined by `SourceType`, and its dimensions, combined by
`Type`; the groups combined by `Include`) become one condition. An imported segment becomes a
static segment, to be filled with `pinpoint-import` from an export of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from midstage.logic.pinpoint.common import Converted, Note, Unconvertible
from midstage.logic.pinpoint.dimensions import Condition, combine, person_dimensions

SegmentName = Callable[[str, str], str]  # (Pinpoint segment id, where it is named) -> Midstage id


def convert_segment(item: Mapping[str, Any], segment_id: str, source: str, name_of: SegmentName) -> Converted:
    notes: list[Note] = []
    name = str(item.get("Name") or segment_id)[:200]
    description = f"Converted from Pinpoint segment {item.get('Id', '?')}"
    if item.get("SegmentType") == "IMPORT":
        notes.append(
            Note(
                "/SegmentType",
                "an imported segment: its members are not in the definition. Export it (create-export-job with "
                f"SegmentId={item.get('Id', '?')}) and run `pinpoint-import {segment_id} <files>`",
            )
        )
        body: dict[str, Any] = {"id": segment_id, "name": name, "description": description, "kind": "static"}
        return Converted("segment", segment_id, source, body, notes)
    condition = segment_condition(item, notes, name_of)
    if condition is None:
        raise Unconvertible("/Dimensions", "no filter of this segment could be translated", notes)
    body = {"id": segment_id, "name": name, "description": description, "kind": "dynamic", "condition": condition}
    return Converted("segment", segment_id, source, body, notes)


def segment_condition(item: Mapping[str, Any], notes: list[Note], name_of: SegmentName) -> Condition | None:
    """The one condition of a dimensional segment's `Dimensions` and `SegmentGroups`."""
    parts = person_dimensions(item.get("Dimensions") or {}, "/Dimensions", notes)
    groups = item.get("SegmentGroups") or {}
    converted: list[Condition] = []
    for index, group in enumerate(groups.get("Groups") or []):
        at = f"/SegmentGroups/Groups/{index}"
        sources = [
            {"path": "segments", "op": "contains", "value": name_of(str(ref.get("Id")), f"{at}/SourceSegments/{i}")}
            for i, ref in enumerate(group.get("SourceSegments") or [])
        ]
        for i, ref in enumerate(group.get("SourceSegments") or []):
            if ref.get("Version") is not None:
                notes.append(
                    Note(
                        f"{at}/SourceSegments/{i}/Version",
                        "Pinpoint pins a version of the source segment; Midstage always reads its current definition",
                    )
                )
        filters: list[Condition] = []
        for d, dimensions in enumerate(group.get("Dimensions") or []):
            found = combine("ALL", person_dimensions(dimensions, f"{at}/Dimensions/{d}", notes))
            if found is not None:
                filters.append(found)
        pieces = [
            c
            for c in (
                combine(str(group.get("SourceType") or "ALL"), sources),
                combine(str(group.get("Type") or "ALL"), filters),
            )
            if c is not None
        ]
        joined = combine("ALL", pieces)
        if joined is not None:
            converted.append(joined)
    include = combine(str(groups.get("Include") or "ALL"), converted)
    if include is not None:
        parts.append(include)
    return combine("ALL", parts)
