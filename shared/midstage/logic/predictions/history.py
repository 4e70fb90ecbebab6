"""What the scheduled refit reads from the analytics archive, and the per-person history it makes.

Pure Python (no numpy): the queries are SQL text for the reports' engines (DuckDB over the
archive's Parquet, or Athena through the Trino translation), and the rows they answer become one
`History` per person:

- orders (`Order Completed`, its archived revenue) and product views (`Product Viewed`) of the
  window, each record once (a fact archived twice keeps its record id);
- profiles merged into another (`identity_merged`) are followed to the profile that lives on,
  so a person's history is one, whichever profile an event first landed on;
- the identifiers each person was seen with (profile ids, user ids, anonymous ids): what the
  privacy suppressions are checked against, and what the scores are addressed to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from midstage.logic.analytics.reports import Query
from midstage.logic.identity import Identifier
from midstage.logic.privacy import PROFILE_ID
from midstage.logic.profile import ORDER_COMPLETED

PRODUCT_VIEWED = "Product Viewed"
# Segment's e-commerce spec names a product `product_id` (or `sku`, or `id` inside `products`).
_ITEM_KEYS = ("product_id", "sku", "id")
MAX_ITEMS_PER_EVENT = 100  # an order's product list is read up to this many lines


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def activity_query(start: date, end: date) -> Query:
    """Orders and product views of `start`..`end` (inclusive UTC days), each record once."""
    events = ", ".join(_quoted(name) for name in (ORDER_COMPLETED, PRODUCT_VIEWED))
    sql = (
        "SELECT profile_id, user_id, anonymous_id, occurred_at, event, revenue, properties "  # noqa: S608
        "FROM (SELECT *, row_number() OVER (PARTITION BY record_id ORDER BY archived_at) AS nth "
        f"FROM archive WHERE kind = 'event' AND event_type = 'track' AND event IN ({events}) "
        f"AND dt BETWEEN {_quoted(start.isoformat())} AND {_quoted(end.isoformat())}) AS activity "
        "WHERE nth = 1 ORDER BY occurred_at, profile_id"
    )
    return Query("predictions_activity", sql, ("event",), start, end)


def merges_query(start: date, end: date) -> Query:
    sql = (
        "SELECT DISTINCT merged_profile_id, profile_id FROM archive "  # noqa: S608
        f"WHERE kind = 'identity_merged' AND dt BETWEEN {_quoted(start.isoformat())} AND {_quoted(end.isoformat())}"
    )
    return Query("predictions_merges", sql, ("identity_merged",), start, end)


def window(as_of: date, lookback_days: int) -> tuple[date, date]:
    return as_of - timedelta(days=lookback_days), as_of


@dataclass
class History:
    """One person, as the archive knows them up to the refit's as-of."""

    person: str  # the profile that lives on
    user_ids: set[str] = field(default_factory=set)
    anonymous_ids: set[str] = field(default_factory=set)
    profile_ids: set[str] = field(default_factory=set)  # theirs and those merged into it
    orders: list[tuple[date, float]] = field(default_factory=list)
    purchased: list[str] = field(default_factory=list)  # in the order first bought
    viewed: list[str] = field(default_factory=list)

    def identifiers(self) -> list[Identifier]:
        found: set[Identifier] = {(PROFILE_ID, p) for p in self.profile_ids}
        found.update(("user_id", u) for u in self.user_ids)
        found.update(("anonymous_id", a) for a in self.anonymous_ids)
        return sorted(found)

    def address(self) -> dict[str, str]:
        """Identifiers the profile updater resolves back to this person: a user id when there is one."""
        if self.user_ids:
            return {"userId": min(self.user_ids)}
        return {"anonymousId": min(self.anonymous_ids)}


def survivors(merges: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """merged profile id -> the profile it lives in now, chains followed (a loop is cut)."""
    into: dict[str, str] = {}
    for row in merges:
        merged, kept = row.get("merged_profile_id"), row.get("profile_id")
        if merged and kept and merged != kept:
            into[str(merged)] = str(kept)
    resolved: dict[str, str] = {}
    for start in into:
        seen = {start}
        current = into[start]
        while current in into and current not in seen:
            seen.add(current)
            current = into[current]
        resolved[start] = current
    return resolved


def item_ids(event: str, properties: str | None) -> list[str]:
    """The products an archived order or view names (its `properties` JSON)."""
    try:
        parsed = json.loads(properties) if properties else {}
    except ValueError:
        return []
    if not isinstance(parsed, dict):
        return []
    found: list[str] = []
    lines = parsed.get("products") if event == ORDER_COMPLETED else None
    candidates = lines[:MAX_ITEMS_PER_EVENT] if isinstance(lines, list) else [parsed]
    for line in candidates:
        if not isinstance(line, dict):
            continue
        for key in _ITEM_KEYS:
            value = line.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                text = str(value).strip()[:128]
                if text not in found:
                    found.append(text)
                break
    return found


def histories(rows: Iterable[Mapping[str, Any]], merged_into: Mapping[str, str]) -> dict[str, History]:
    """Per living profile id, its history, from `activity_query`'s rows."""
    people: dict[str, History] = {}
    for row in rows:
        landed = row.get("profile_id")
        if not landed:
            continue
        person = merged_into.get(str(landed), str(landed))
        history = people.get(person)
        if history is None:
            history = people[person] = History(person, profile_ids={person})
        history.profile_ids.add(str(landed))
        if row.get("user_id"):
            history.user_ids.add(str(row["user_id"]))
        if row.get("anonymous_id"):
            history.anonymous_ids.add(str(row["anonymous_id"]))
        event = str(row.get("event"))
        items = item_ids(event, row.get("properties"))
        if event == ORDER_COMPLETED:
            history.orders.append((_day(row["occurred_at"]), float(row.get("revenue") or 0.0)))
            history.purchased.extend(i for i in items if i not in history.purchased)
        else:
            history.viewed.extend(i for i in items if i not in history.viewed)
    return {person: h for person, h in people.items() if h.user_ids or h.anonymous_ids}


def _day(moment: Any) -> date:
    if isinstance(moment, datetime):
        return moment.date()
    if isinstance(moment, date):
        return moment
    return date.fromisoformat(str(moment)[:10])


def interactions(people: Iterable[History]) -> list[tuple[str, str, str]]:
    """(person, item, purchase | view) rows for the item-to-item model."""
    rows: list[tuple[str, str, str]] = []
    for history in people:
        rows.extend((history.person, item, "purchase") for item in history.purchased)
        rows.extend((history.person, item, "view") for item in history.viewed)
    return rows
