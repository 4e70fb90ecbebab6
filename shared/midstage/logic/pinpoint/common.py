"""What every converter shares: the report's items, Midstage ids for Pinpoint names and ids,
ISO 8601 durations, and the trait a Pinpoint attribute became on import."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

from midstage.logic.imports.pinpoint import _trait_name

Kind = Literal["segment", "template", "campaign", "rule", "journey"]

_NOT_ID = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ISO_DURATION = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


@dataclass(frozen=True)
class Note:
    """Something of a Pinpoint definition that was not carried over exactly: where it is in the
    Pinpoint JSON (a JSON pointer from the item) and what happened to it and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class Converted:
    """One Midstage definition made from one Pinpoint item. `body` is the document as written
    to its file (with its `id`); `notes` say what in the source it does not reproduce."""

    kind: Kind
    id: str
    source: str  # "<file>: <Pinpoint type> '<name>'"
    body: dict[str, Any]
    notes: list[Note] = field(default_factory=list)


@dataclass
class Refused:
    """A Pinpoint item that could not be converted at all, and why."""

    source: str
    notes: list[Note]


class Unconvertible(Exception):
    """Raised inside a converter when the item cannot become a definition at all."""

    def __init__(self, path: str, message: str, earlier: list[Note] | None = None) -> None:
        super().__init__(message)
        self.note = Note(path, message)
        self.earlier = list(earlier or [])  # what the converter had noted before it gave up

    @property
    def notes(self) -> list[Note]:
        return [*self.earlier, self.note]


def slug(text: str, fallback: str) -> str:
    """A Midstage id (a-z 0-9 -, up to 64) from a Pinpoint name: "WelcomeEmail" is welcome-email."""
    plain = unicodedata.normalize("NFKD", _CAMEL.sub("-", text)).encode("ascii", "ignore").decode().lower()
    cleaned = _NOT_ID.sub("-", plain).strip("-")[:64].strip("-")
    return cleaned or fallback


class Ids:
    """Distinct ids within one kind: the same key always gets the same id."""

    def __init__(self) -> None:
        self._by_key: dict[Any, str] = {}
        self._taken: set[str] = set()

    def get(self, key: Any) -> str | None:
        return self._by_key.get(key)

    def assign(self, key: Any, wanted: str) -> str:
        if key in self._by_key:
            return self._by_key[key]
        candidate, n = wanted, 2
        while candidate in self._taken:
            suffix = f"-{n}"
            candidate, n = wanted[: 64 - len(suffix)] + suffix, n + 1
        self._taken.add(candidate)
        self._by_key[key] = candidate
        return candidate


def iso_minutes(text: Any) -> int | None:
    """Whole minutes of an ISO 8601 duration (PT1H, P2D, P1DT12H, P1W); None if it is not one
    or has seconds that are not whole minutes."""
    match = _ISO_DURATION.fullmatch(text) if isinstance(text, str) and text not in ("P", "PT") else None
    if match is None or not any(match.groups()):
        return None
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if seconds % 60:
        return None
    return ((weeks * 7 + days) * 24 + hours) * 60 + minutes + seconds // 60


def duration_text(minutes: int) -> str:
    """Minutes as a Midstage duration in the largest whole unit ("2d", "90m")."""
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def trait_path(name: str) -> list[str] | None:
    """The condition path of the trait a Pinpoint attribute became on import (pinpoint-import
    cleans names the same way), as a list so a dot in the name stays in the name."""
    trait = _trait_name(name)
    return None if trait is None else ["traits", trait]


def pointer(*parts: Any) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)
