"""Timestamps travel as ISO 8601 UTC with milliseconds, so that text order is time order."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    if moment.tzinfo is not UTC:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def day_of(timestamp: str) -> str:
    """The UTC calendar day of an iso() timestamp, as YYYYMMDD."""
    return timestamp[0:4] + timestamp[5:7] + timestamp[8:10]


def minute_of(moment: datetime) -> str:
    """The minute bucket a timer is filed under, as YYYYMMDDHHMM."""
    return moment.strftime("%Y%m%d%H%M")
