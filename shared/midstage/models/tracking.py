"""The Segment tracking spec as Midstage accepts it, and the enriched event it hands off."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]
EVENT_TYPES: frozenset[str] = frozenset(EventType.__args__)  # type: ignore[attr-defined]

_Id = Field(default=None, min_length=1, max_length=512)


class TrackingEvent(BaseModel):
    """One call of the spec: https://segment.com/docs/connections/spec/common/.

    Unknown top-level fields are ignored (SDKs add their own, such as `channel` or `rudderId`);
    numeric ids are accepted and kept as strings, as Segment does.
    """

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_max_length=32 * 1024)

    type: EventType
    messageId: str | None = Field(default=None, min_length=1, max_length=256)
    userId: str | None = _Id
    anonymousId: str | None = _Id
    previousId: str | None = _Id
    groupId: str | None = _Id
    event: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=512)
    category: str | None = Field(default=None, max_length=512)
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    channel: str | None = Field(default=None, max_length=64)

    @field_validator("userId", "anonymousId", "previousId", "groupId", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: Any) -> Any:
        # RudderStack's browser SDK sends `"userId": ""` for anonymous visitors: that is no identifier.
        return None if value == "" else value

    @model_validator(mode="after")
    def _required_by_type(self) -> TrackingEvent:
        if self.type == "track" and not (self.event and self.event.strip()):
            raise ValueError("a track call needs a non-empty 'event' name")
        if self.type == "alias" and not (self.previousId and self.userId):
            raise ValueError("an alias call needs both 'previousId' and 'userId'")
        if self.type == "group" and not self.groupId:
            raise ValueError("a group call needs a 'groupId'")
        return self
