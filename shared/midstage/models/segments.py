"""Segments: audiences defined with the condition language (dynamic) or by import (static)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from midstage.models.messaging import _ID, _Strict

SegmentKind = Literal["dynamic", "static"]
SEGMENT_ID = _ID


class SegmentBody(_Strict):
    """What a user writes (API payload or YAML file).

    A dynamic segment is everyone its condition matches, kept current on every profile write; a
    static one is a list of people, changed only by imports (`Segment Added` / `Segment Removed`).
    The condition is checked in full by logic/segments.validate_segment when the segment is saved.
    """

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    kind: SegmentKind = "dynamic"
    condition: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _condition_matches_kind(self) -> SegmentBody:
        if self.kind == "dynamic" and self.condition is None:
            raise ValueError("a dynamic segment needs a `condition`")
        if self.kind == "static" and self.condition is not None:
            raise ValueError("a static segment has no `condition`: its members come from imports")
        return self


class Segment(SegmentBody):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=SEGMENT_ID)
    version: int = 1
    created_at: str = ""
    updated_at: str = ""
    updated_by: str = ""
