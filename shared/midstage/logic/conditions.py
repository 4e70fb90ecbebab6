"""The one condition language: rules use it now, segments and journeys will reuse it.

A condition is JSON, checked when it is saved (`validate`) and compiled once (`compile_condition`)
into a tree of plain closures: no eval, no user code, no parsing or operator-name lookups while
evaluating. It sees `Facts`: a profile, the event at hand, the time, the person's segments.

    {"all": [c, ...]}   {"any": [c, ...]}   {"not": c}
    {"path": "traits.plan", "op": "eq", "value": "pro"}
    {"did": "Order Completed", "at_least": 2, "within": "30d"}

Paths are dotted (`traits.plan`, `event.properties.total`), with `["..."]` for a segment that
is not `[A-Za-z0-9_$-]{1,64}` (`computed.event_counts["Order Completed"].30d`), or a JSON list
of segments (`["computed", "event_counts", "Order Completed", "30d"]`). Roots: `event.name`
(track event name, else page/screen name), `event.type|timestamp|messageId|userId|anonymousId`,
`event.properties.*`, `event.context.*`, `traits.*`, `computed.*`, `profile.<field>`, `tags`,
`segments`, `identities.<type>`. Dicts are walked by key; lists are not indexed.

Semantics, decided once for every consumer:
- Missing: an absent key, a null, no profile or no event (and for `tags`, `segments`,
  `identities.*` an empty list) is missing, and every comparison with a missing value is false
  except `exists: false`. That includes `ne` and `not_in`: "not pro, or unknown" is
  `{"not": {"path": ..., "op": "eq", ...}}`, so the author says which one they mean.
- Types are JSON's, strictly: bool is never a number, `eq` 1 and 1.0 is true, `eq` "1" and 1 is
  false; `in`/`not_in`/`contains` use the same equality (timestamps there compare as text). A
  value of the wrong type at run time makes the comparison false (`ne`/`not_in`: true, they
  negate `eq`/`in` over present values); nothing raises.
- Ordering (`gt gte lt lte between`) takes a number or an ISO 8601 timestamp. Against a number,
  a numeric string compares by its value ("123.40" > 100); other strings never order. Against a
  timestamp, the actual value must be an ISO timestamp string. `eq`/`ne` with a timestamp value
  compare instants too. Timestamps without a zone are UTC. Accepted shape:
  `YYYY-MM-DD[(T| )hh:mm[:ss[.ffffff]]][Z|+hh:mm|-hh:mm]`.
- `profile.revenue` (a decimal string on the profile) is a number here.
- `within_last "30d"`: the timestamp is in [now - 30d, now]. `not_within_last "30d"`: the
  timestamp exists and is before now - 30d (a missing one is false, as everywhere; "never
  ordered, or not lately" is `{"not": {... "within_last" ...}}`). A timestamp in the future is
  neither. Durations: a positive whole number of m, h, d or w.
- `contains`: membership when the actual value is a list (or `segments`), substring when both
  are strings. `starts_with` and `regex` need a string; `regex` searches (anchor with ^ and $)
  in the first 2,048 characters.
- Behaviour `{"did": NAME, ...}` counts the events counted under NAME on the profile (a track
  event's name; `$page`, `$identify`, ... for other calls): all time from `event_counts`, or
  with `within` ("30d", "4w") from the daily buckets, whole UTC days, today included. Windows are
  limited to `max_window_days` (90: what the profile keeps). No profile counts as 0. Bounds:
  `at_least`, `at_most` (both inclusive, may be combined) or `exactly`.
- Empty `all`/`any` lists are refused: they are almost always a half-built condition, and
  "everyone" or "no one" by accident is costly.

Hostile definitions are refused: at most 500 nodes, 12 levels, strings of 1,024 characters,
1,000 values in a list, 8 path segments, and regular expressions of 256 characters that pass
`_regex_problem` (no nested quantifiers, backreferences, lookarounds, atomic groups, possessive
quantifiers or alternation inside a repeat, and a bound on how much backtracking adjacent
quantifiers can do on 2,048 characters).
"""

from __future__ import annotations

import importlib
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from midstage.errors import InvalidInput
from midstage.logic.profile import windowed_count
from midstage.logic.timefmt import iso
from midstage.models.profile import Profile

# The standard library's own regex parser, so safety is judged on exactly what `re` will run.
_sre_parser: Any = importlib.import_module("re._parser")

__all__ = [
    "DEFAULT_MAX_WINDOW_DAYS",
    "OPERATORS",
    "Condition",
    "ConditionError",
    "Facts",
    "Issue",
    "compile_condition",
    "validate",
]

DEFAULT_MAX_WINDOW_DAYS = 90
MAX_NODES = 500
MAX_DEPTH = 12
MAX_STRING = 1024
MAX_LIST_VALUES = 1000
MAX_PATH_SEGMENTS = 8
MAX_PATTERN = 256
REGEX_WINDOW = 2048
# Backtracking steps a pattern may be estimated to need on REGEX_WINDOW characters: one
# unbounded quantifier searched anywhere, or two adjacent ones anchored at the start (~10 ms).
REGEX_WORK_BUDGET = REGEX_WINDOW * REGEX_WINDOW
MAX_ISSUES = 100
MAX_COUNT = 10**9
_UNBOUNDED = 2**63  # at_most when absent: more than any counter holds
_MAX_DURATION = timedelta(days=36_500)  # keeps now - duration far from datetime's limits

OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "regex",
    "exists",
    "within_last",
    "not_within_last",
    "before",
    "after",
)
_ORDERING = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
# What each kind of path supports; "any" is a path into free-form data (traits, properties).
_KIND_OPERATORS: dict[str, tuple[str, ...]] = {
    "any": OPERATORS,
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "exists"),
    "string": ("eq", "ne", "in", "not_in", "contains", "starts_with", "regex", "exists"),
    "time": (
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "before",
        "after",
        "within_last",
        "not_within_last",
        "exists",
    ),
    "list": ("contains", "exists"),
}
_KIND_NAMES = {"number": "a number", "string": "a string", "time": "a timestamp", "list": "a list"}
_NODE_KEYS = ("all", "any", "not", "path", "did")
_COMPARISON_KEYS = ("path", "op", "value")
_BEHAVIOUR_KEYS = ("did", "at_least", "at_most", "exactly", "within")
_ROOTS = ("event", "traits", "computed", "profile", "tags", "segments", "identities")
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
_DURATION = re.compile(r"([1-9][0-9]{0,5})([mhdw])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_ISO_SHAPE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?"
).fullmatch
_BRACKETED = json.JSONDecoder()
_NUMERIC_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?").fullmatch

_TIMES: dict[str, datetime | None] = {}
_MAX_TIMES = 4096

Check = Callable[[Any], bool]
Test = Callable[["Facts"], bool]
Explain = Callable[["Facts"], dict[str, Any]]
Getter = Callable[["Facts"], Any]


@dataclass(frozen=True, slots=True)
class Facts:
    """What a condition sees. `event` is a slim event (see logic.profile.slim_event)."""

    profile: Profile | None
    event: Mapping[str, Any] | None
    now: datetime  # aware; relative dates and behaviour windows count back from it
    # The segments to judge `segments` conditions by; None reads the profile's stored memberships.
    # Segment evaluation passes the memberships computed so far, in dependency order.
    segments: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("Facts.now must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with a definition: where (a JSON pointer into it) and what."""

    location: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"location": self.location, "message": self.message}


class ConditionError(InvalidInput):
    """A definition was refused; `issues` says where and why (the admin API's 400 details)."""

    code = "invalid_condition"

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        if not self.issues:
            summary = "invalid condition"
        else:
            first = self.issues[0]
            more = f" (and {len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
            summary = f"invalid condition at {first.location or '/'}: {first.message}{more}"
        super().__init__(summary)

    def to_body(self) -> dict[str, object]:
        return {**super().to_body(), "details": [issue.to_dict() for issue in self.issues]}


class Condition:
    """A compiled condition. `test` is the closure tree itself, so a call costs no dispatch."""

    __slots__ = ("_explain", "paths", "roots", "spec", "test")

    test: Test
    spec: Any
    paths: frozenset[str]  # every path read, canonical; behaviour counts as behaviour["<name>"]
    roots: frozenset[str]  # their first segments: "traits", "event", "behaviour", ...
    _explain: Explain

    def __init__(self, spec: Any, test: Test, explain: Explain, paths: frozenset[str]) -> None:
        self.spec = spec
        self.test = test
        self._explain = explain
        self.paths = paths
        self.roots = frozenset(re.split(r"[.\[]", path, maxsplit=1)[0] for path in paths)

    def explain(self, facts: Facts) -> dict[str, Any]:
        """A trace for dry runs: each node's spec, whether it matched, the value seen, and why.

        Every child is evaluated (no short-circuit), so the trace shows all of them.
        """
        return self._explain(facts)

    def __repr__(self) -> str:
        return f"Condition({json.dumps(self.spec)[:200]})"


def validate(spec: Any, *, max_window_days: int = DEFAULT_MAX_WINDOW_DAYS) -> list[Issue]:
    """Everything wrong with a definition (at most MAX_ISSUES), or [] when it compiles."""
    return _Compiler(max_window_days).run(spec)[1]


def compile_condition(spec: Any, *, max_window_days: int = DEFAULT_MAX_WINDOW_DAYS) -> Condition:
    """Compile once, test many times. Raises ConditionError listing every issue found."""
    compiler = _Compiler(max_window_days)
    node, issues = compiler.run(spec)
    if issues or node is None:
        raise ConditionError(issues)
    return Condition(spec, node.test, node.explain, frozenset(compiler.paths))


# ------------------------------------------------------------------------------ values at run time
def _time(value: Any) -> datetime | None:
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


def _numeric_text(value: str) -> float | None:
    if len(value) > 64 or _NUMERIC_TEXT(value) is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _is_number(value: Any) -> bool:
    return (type(value) is int) or (type(value) is float and math.isfinite(value))


def _json_type(value: Any) -> str:
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


def _show(value: Any, limit: int = 80) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, frozenset | set):
        value = sorted(value, key=str)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> Any:
    """A value for the explain trace, as JSON can carry it."""
    if isinstance(value, frozenset | set):
        return sorted(value, key=str)
    return value


def _pointer(location: str, key: Any) -> str:
    return f"{location}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _duration(value: Any) -> timedelta | None:
    if not isinstance(value, str):
        return None
    match = _DURATION.fullmatch(value)
    if match is None:
        return None
    span = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return span if span <= _MAX_DURATION else None


# ----------------------------------------------------------------------------------------- paths
class _Path(NamedTuple):
    label: str  # canonical text, also what explain shows
    kind: str  # any | number | string | time | list
    get: Getter  # None when missing


def _split_path(raw: Any) -> tuple[list[str] | None, str]:
    """Segments of a string or list path, or None and why not."""
    if isinstance(raw, list):
        if not 1 <= len(raw) <= MAX_PATH_SEGMENTS:
            return None, f"a path has 1 to {MAX_PATH_SEGMENTS} segments"
        for segment in raw:
            if not isinstance(segment, str) or not 1 <= len(segment) <= 256:
                return None, "each segment of a list path is a string of 1 to 256 characters"
        return list(raw), ""
    if not isinstance(raw, str):
        return None, f"a path is a dotted string or a list of segments, not {_json_type(raw)}"
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


def _render(segments: Sequence[str]) -> str:
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


def _resolve(segments: list[str]) -> tuple[_Path | None, str]:
    root, rest = segments[0], tuple(segments[1:])
    label = _render(segments)
    if root == "event":
        if not rest:
            return None, "event needs a field: name, type, timestamp, properties.<key> or context.<key>"
        field, keys = rest[0], rest[1:]
        if field in ("properties", "context"):
            return _Path(label, "any", _event_dict_getter(field, keys)), ""
        if field in _EVENT_FIELDS and not keys:
            return _Path(label, _EVENT_FIELDS[field], _event_field_getter(field)), ""
        return None, f"unknown event field in {label}; known: {', '.join(_EVENT_FIELDS)}, properties.*, context.*"
    if root in ("traits", "computed"):
        if not rest:
            return None, f"{root} needs a key, like {root}.plan"
        return _Path(label, "any", _profile_dict_getter(root, rest)), ""
    if root == "profile":
        if len(rest) != 1 or rest[0] not in _PROFILE_FIELDS:
            return None, f"profile fields are: {', '.join(_PROFILE_FIELDS)}"
        return _Path(label, _PROFILE_FIELDS[rest[0]], _profile_field_getter(rest[0])), ""
    if root in ("tags", "segments"):
        if rest:
            return None, f"{root} is a list of strings and has no fields"
        return _Path(label, "list", _tags if root == "tags" else _segments), ""
    if root == "identities":
        if len(rest) != 1:
            return None, "identities needs one type, like identities.email"
        return _Path(label, "list", _identity_getter(rest[0])), ""
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


# ------------------------------------------------------------------------- checks (built once)
def _eq_check(value: Any) -> Check:
    if isinstance(value, bool):
        return lambda actual: actual is value
    if isinstance(value, int | float):
        return lambda actual: (type(actual) is int or type(actual) is float) and actual == value
    moment = _time(value)
    if moment is not None:
        return lambda actual: _time(actual) == moment
    return lambda actual: type(actual) is str and actual == value


def _in_check(values: list[Any]) -> Check:
    strings = frozenset(v for v in values if type(v) is str)
    numbers = frozenset(v for v in values if type(v) is int or type(v) is float)
    # Kept apart from numbers: in one set True and 1 would be the same member.
    flags = frozenset(v for v in values if type(v) is bool)
    if not numbers and not flags:
        return lambda actual: type(actual) is str and actual in strings

    def check(actual: Any) -> bool:
        kind = type(actual)
        if kind is str:
            return actual in strings
        if kind is int or kind is float:
            return actual in numbers
        return kind is bool and actual in flags

    return check


def _contains_check(value: Any) -> Check:
    if isinstance(value, str):

        def check_text(actual: Any) -> bool:
            kind = type(actual)
            # A list holds strings by ==, which is exact for strings; a string holds a substring.
            return (
                kind is str or kind is list or kind is frozenset or kind is tuple or kind is set
            ) and value in actual

        return check_text
    if isinstance(value, bool):
        return lambda actual: type(actual) in (list, tuple, frozenset, set) and any(x is value for x in actual)

    def check_number(actual: Any) -> bool:
        return type(actual) in (list, tuple, frozenset, set) and any(
            (type(x) is int or type(x) is float) and x == value for x in actual
        )

    return check_number


def _order_check(compare: Callable[[Any, Any], bool], bound: Any) -> Check:
    if isinstance(bound, datetime):

        def check_time(actual: Any) -> bool:
            moment = _time(actual)
            return moment is not None and compare(moment, bound)

        return check_time

    def check_number(actual: Any) -> bool:
        kind = type(actual)
        if kind is int or kind is float:
            return compare(actual, bound)
        if kind is str:
            number = _numeric_text(actual)
            return number is not None and compare(number, bound)
        return False

    return check_number


def _between_check(low: Any, high: Any) -> Check:
    above, below = _order_check(operator.ge, low), _order_check(operator.le, high)
    return lambda actual: above(actual) and below(actual)


# -------------------------------------------------------------------------------------- compiler
class _Compiled(NamedTuple):
    test: Test
    explain: Explain


class _Compiler:
    """One walk over a definition: it collects issues and builds closures at the same time,
    so `validate` and `compile_condition` can never disagree."""

    def __init__(self, max_window_days: int) -> None:
        if isinstance(max_window_days, bool) or not isinstance(max_window_days, int) or max_window_days < 1:
            raise ValueError("max_window_days is a whole number of days, at least 1")
        self.max_window_days = max_window_days
        self.issues: list[Issue] = []
        self.nodes = 0
        self.too_big = False
        self.paths: set[str] = set()

    def run(self, spec: Any) -> tuple[_Compiled | None, list[Issue]]:
        node = self.node(spec, "", 1)
        return node, self.issues

    def issue(self, location: str, message: str) -> None:
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(Issue(location, message))

    def node(self, spec: Any, location: str, depth: int) -> _Compiled | None:
        if self.too_big:
            return None
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.too_big = True
            self.issue("", f"a condition has at most {MAX_NODES} nodes")
            return None
        if depth > MAX_DEPTH:
            self.issue(location, f"nested deeper than {MAX_DEPTH} levels")
            return None
        if not isinstance(spec, dict):
            self.issue(location, f"expected a condition object, got {_json_type(spec)}")
            return None
        kinds = [key for key in _NODE_KEYS if key in spec]
        if len(kinds) != 1:
            found = f"has {' and '.join(kinds)}" if kinds else "has none of them"
            self.issue(
                location,
                f"a condition has exactly one of: all, any, not, path (a comparison), did (a behaviour count); {found}",
            )
            return None
        kind = kinds[0]
        if kind in ("all", "any"):
            return self.group(kind, spec, location, depth)
        if kind == "not":
            return self.negation(spec, location, depth)
        if kind == "path":
            return self.comparison(spec, location)
        return self.behaviour(spec, location)

    def unknown_keys(self, spec: dict[Any, Any], allowed: tuple[str, ...], location: str, what: str) -> bool:
        bad = [key for key in spec if key not in allowed]
        for key in bad:
            self.issue(_pointer(location, key), f"unknown key {str(key)!r}; {what} has: {', '.join(allowed)}")
        return bool(bad)

    # ---------------------------------------------------------------------------- combinators
    def group(self, kind: str, spec: dict[str, Any], location: str, depth: int) -> _Compiled | None:
        bad = self.unknown_keys(spec, (kind,), location, f"an {kind!r} condition")
        where = _pointer(location, kind)
        members = spec[kind]
        if not isinstance(members, list):
            self.issue(where, f"{kind} takes a list of conditions, not {_json_type(members)}")
            return None
        if not members:
            self.issue(
                where, f"an empty {kind} list is refused; it would match {'everyone' if kind == 'all' else 'no one'}"
            )
            return None
        children: list[_Compiled | None] = []
        for index, member in enumerate(members):
            if self.too_big:
                return None
            children.append(self.node(member, _pointer(where, index), depth + 1))
        ready = [child for child in children if child is not None]
        if bad or len(ready) != len(children):
            return None
        tests = tuple(child.test for child in ready)
        explains = tuple(child.explain for child in ready)
        test = _all_test(tests) if kind == "all" else _any_test(tests)
        needed = "all must match" if kind == "all" else "at least one must match"

        def explain(facts: Facts) -> dict[str, Any]:
            traces = [child(facts) for child in explains]
            hits = sum(1 for trace in traces if trace["matched"])
            matched = hits == len(traces) if kind == "all" else hits > 0
            return {
                "condition": spec,
                "matched": matched,
                "actual": None,
                "reason": f"{hits} of {len(traces)} matched; {needed}",
                "children": traces,
            }

        return _Compiled(test, explain)

    def negation(self, spec: dict[str, Any], location: str, depth: int) -> _Compiled | None:
        bad = self.unknown_keys(spec, ("not",), location, "a 'not' condition")
        inner = self.node(spec["not"], _pointer(location, "not"), depth + 1)
        if inner is None or bad:
            return None
        inner_test, inner_explain = inner

        def test(facts: Facts) -> bool:
            return not inner_test(facts)

        def explain(facts: Facts) -> dict[str, Any]:
            trace = inner_explain(facts)
            said = "matched" if trace["matched"] else "did not match"
            return {
                "condition": spec,
                "matched": not trace["matched"],
                "actual": None,
                "reason": f"the inner condition {said}",
                "children": [trace],
            }

        return _Compiled(test, explain)

    # ---------------------------------------------------------------------------- comparisons
    def comparison(self, spec: dict[str, Any], location: str) -> _Compiled | None:
        bad = self.unknown_keys(spec, _COMPARISON_KEYS, location, "a comparison")
        segments, why = _split_path(spec["path"])
        path = None
        if segments is not None:
            path, why = _resolve(segments)
        if path is None:
            self.issue(_pointer(location, "path"), why)
        op = spec.get("op")
        if "op" not in spec:
            self.issue(_pointer(location, "op"), f"missing; one of: {', '.join(OPERATORS)}")
        elif not isinstance(op, str) or op not in OPERATORS:
            self.issue(_pointer(location, "op"), f"unknown operator {_show(op)}; one of: {', '.join(OPERATORS)}")
            op = None
        if "value" not in spec:
            self.issue(_pointer(location, "value"), "missing")
        if path is None or not isinstance(op, str) or "value" not in spec:
            return None
        if op not in _KIND_OPERATORS[path.kind]:
            self.issue(_pointer(location, "op"), _wrong_operator(path, op))
            return None
        value = spec["value"]
        built = self.check(op, path.kind, value, _pointer(location, "value"))
        if built is None or bad:
            return None
        self.paths.add(path.label)
        return _comparison_node(spec, path, op, value, built)

    def check(self, op: str, kind: str, value: Any, where: str) -> Check | Callable[[Any, datetime], bool] | None:
        """The check of one comparison, validating its value; None after reporting an issue."""
        if op == "exists":
            if not isinstance(value, bool):
                self.issue(where, f"exists takes true or false, not {_json_type(value)}")
                return None
            return _exists_placeholder
        if op in ("eq", "ne"):
            if not self.scalar(value, kind, where, op):
                return None
            equal = _eq_check(value)
            return equal if op == "eq" else (lambda actual: not equal(actual))
        if op in _ORDERING:
            bound = self.ordered(value, kind, where, op)
            return None if bound is None else _order_check(_ORDERING[op], bound)
        if op == "between":
            return self.between(value, kind, where)
        if op in ("in", "not_in"):
            return self.membership(op, value, kind, where)
        if op == "contains":
            if not self.scalar(value, "string" if kind in ("string", "list") else kind, where, op):
                return None
            return _contains_check(value)
        if op == "starts_with":
            if not isinstance(value, str) or not value:
                self.issue(where, f"starts_with takes a non-empty string, not {_json_type(value)}")
                return None
            if not self.short(value, where):
                return None
            prefix = value
            return lambda actual: type(actual) is str and actual.startswith(prefix)
        if op == "regex":
            return self.regex(value, where)
        if op in ("before", "after"):
            moment = _time(value) if isinstance(value, str) else None
            if moment is None:
                self.issue(where, f"{op} takes an ISO 8601 timestamp, like 2026-11-22T10:00:00Z")
                return None
            return _order_check(operator.lt if op == "before" else operator.gt, moment)
        span = _duration(value)  # within_last / not_within_last
        if span is None:
            self.issue(where, f'{op} takes a duration like "15m", "12h", "30d" or "2w" (at most 100 years)')
            return None
        if op == "within_last":

            def within(actual: Any, now: datetime) -> bool:
                moment = _time(actual)
                return moment is not None and now - span <= moment <= now

            return within

        def older(actual: Any, now: datetime) -> bool:
            moment = _time(actual)
            return moment is not None and moment < now - span

        return older

    def short(self, value: str, where: str) -> bool:
        if len(value) > MAX_STRING:
            self.issue(where, f"strings are limited to {MAX_STRING} characters (this one has {len(value)})")
            return False
        return True

    def scalar(self, value: Any, kind: str, where: str, op: str) -> bool:
        """A value to compare by equality with a path of `kind`."""
        if kind == "number":
            ok, wanted = _is_number(value), "a number"
        elif kind == "string":
            ok, wanted = isinstance(value, str), "a string"
        elif kind == "time":
            ok, wanted = isinstance(value, str) and _time(value) is not None, "an ISO 8601 timestamp"
        else:
            ok = isinstance(value, str | bool) or _is_number(value)
            wanted = "a string, a number or a boolean"
        if not ok:
            self.issue(where, f"{op} takes {wanted} here, not {_json_type(value)}")
            return False
        return not isinstance(value, str) or self.short(value, where)

    def ordered(self, value: Any, kind: str, where: str, op: str) -> Any:
        """The bound of an ordering comparison: a number or a datetime; None after an issue."""
        if kind != "time" and _is_number(value):
            return value
        if kind != "number" and isinstance(value, str):
            moment = _time(value)
            if moment is not None:
                return moment
        wanted = {"number": "a number", "time": "an ISO 8601 timestamp"}.get(kind, "a number or an ISO 8601 timestamp")
        self.issue(where, f"{op} takes {wanted}, not {_json_type(value)}")
        return None

    def between(self, value: Any, kind: str, where: str) -> Check | None:
        if not isinstance(value, list) or len(value) != 2:
            self.issue(where, "between takes [low, high]: two numbers or two ISO 8601 timestamps")
            return None
        low = self.ordered(value[0], kind, _pointer(where, 0), "between")
        high = self.ordered(value[1], kind, _pointer(where, 1), "between")
        if low is None or high is None:
            return None
        if isinstance(low, datetime) != isinstance(high, datetime):
            self.issue(where, "between takes two numbers or two timestamps, not one of each")
            return None
        if low > high:
            self.issue(where, "between takes [low, high] with low <= high")
            return None
        return _between_check(low, high)

    def membership(self, op: str, value: Any, kind: str, where: str) -> Check | None:
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST_VALUES:
            self.issue(where, f"{op} takes a list of 1 to {MAX_LIST_VALUES} values")
            return None
        for index, item in enumerate(value):
            if not self.scalar(item, kind, _pointer(where, index), op):
                return None  # one issue per list is enough to fix it
        inside = _in_check(value)
        return inside if op == "in" else (lambda actual: not inside(actual))

    def regex(self, value: Any, where: str) -> Check | None:
        if not isinstance(value, str) or not value:
            self.issue(where, f"regex takes a non-empty pattern string, not {_json_type(value)}")
            return None
        if len(value) > MAX_PATTERN:
            self.issue(where, f"patterns are limited to {MAX_PATTERN} characters (this one has {len(value)})")
            return None
        problem = _regex_problem(value)
        if problem:
            self.issue(where, problem)
            return None
        search = re.compile(value).search
        return lambda actual: type(actual) is str and search(actual, 0, REGEX_WINDOW) is not None

    # ------------------------------------------------------------------------------ behaviour
    def behaviour(self, spec: dict[str, Any], location: str) -> _Compiled | None:
        bad = self.unknown_keys(spec, _BEHAVIOUR_KEYS, location, "a behaviour condition")
        name = spec["did"]
        ok = not bad
        if not isinstance(name, str) or not name:
            self.issue(_pointer(location, "did"), f"did takes an event name, not {_json_type(name)}")
            ok = False
        elif not self.short(name, _pointer(location, "did")):
            ok = False
        bounds: dict[str, int] = {}
        for key in ("at_least", "at_most", "exactly"):
            if key in spec:
                count = spec[key]
                if type(count) is not int or not 0 <= count <= MAX_COUNT:
                    self.issue(_pointer(location, key), f"{key} takes a whole number from 0 to {MAX_COUNT:,}")
                    ok = False
                else:
                    bounds[key] = count
        if not any(key in spec for key in ("at_least", "at_most", "exactly")):
            self.issue(location, "a behaviour condition needs at_least, at_most or exactly")
            ok = False
        elif "exactly" in spec and ("at_least" in spec or "at_most" in spec):
            self.issue(_pointer(location, "exactly"), "exactly cannot be combined with at_least or at_most")
            ok = False
        elif bounds.get("at_least", 0) > bounds.get("at_most", MAX_COUNT):
            self.issue(_pointer(location, "at_most"), "at_most is below at_least: nothing could match")
            ok = False
        days: int | None = None
        if "within" in spec:
            days = self.window(spec["within"], _pointer(location, "within"))
            ok = ok and days is not None
        if not ok:
            return None
        self.paths.add(f"behaviour[{json.dumps(name)}]")
        low = bounds.get("exactly", bounds.get("at_least", 0))
        high = bounds.get("exactly", bounds.get("at_most", _UNBOUNDED))
        return _behaviour_node(spec, name, low, high, days)

    def window(self, value: Any, where: str) -> int | None:
        match = _DURATION.fullmatch(value) if isinstance(value, str) else None
        if match is None or match.group(2) not in ("d", "w"):
            self.issue(where, 'within takes whole days or weeks, like "30d" or "4w"')
            return None
        days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
        if days > self.max_window_days:
            self.issue(
                where,
                f"within {value} is {days} days; behaviour windows are limited to {self.max_window_days} days "
                "(the daily counts a profile keeps); leave within out to count all time",
            )
            return None
        return days


def _exists_placeholder(actual: Any) -> bool:  # exists is decided by the node itself
    return actual is not None


def _wrong_operator(path: _Path, op: str) -> str:
    allowed = ", ".join(_KIND_OPERATORS[path.kind])
    if path.kind == "list":
        return (
            f"{path.label} is a list: use contains or exists (wrap contains in not for 'does not contain'); "
            f"{op} does not apply"
        )
    return f"{path.label} is {_KIND_NAMES[path.kind]}: {op} does not apply; use one of: {allowed}"


def _all_test(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda facts: first(facts) and second(facts)
    if len(tests) == 3:
        first, second, third = tests
        return lambda facts: first(facts) and second(facts) and third(facts)

    def test(facts: Facts) -> bool:
        for member in tests:  # noqa: SIM110 - a plain loop is faster than all() over a generator
            if not member(facts):
                return False
        return True

    return test


def _any_test(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda facts: first(facts) or second(facts)
    if len(tests) == 3:
        first, second, third = tests
        return lambda facts: first(facts) or second(facts) or third(facts)

    def test(facts: Facts) -> bool:
        for member in tests:  # noqa: SIM110 - a plain loop is faster than any() over a generator
            if member(facts):
                return True
        return False

    return test


def _comparison_node(spec: dict[str, Any], path: _Path, op: str, value: Any, built: Callable[..., bool]) -> _Compiled:
    get = path.get
    test: Test
    if op == "exists":
        if value:

            def test(facts: Facts) -> bool:
                return get(facts) is not None

        else:

            def test(facts: Facts) -> bool:
                return get(facts) is None

    elif op in ("within_last", "not_within_last"):
        timed = built

        def test(facts: Facts) -> bool:
            actual = get(facts)
            return actual is not None and timed(actual, facts.now)

    else:
        check = built

        def test(facts: Facts) -> bool:
            actual = get(facts)
            return actual is not None and check(actual)

    expected = f"{op} {_show(value)}"
    span = _duration(value) if op in ("within_last", "not_within_last") else None

    def explain(facts: Facts) -> dict[str, Any]:
        actual = get(facts)
        detail = expected
        if span is not None:
            edge = iso(facts.now - span)
            detail += f" (on or after {edge})" if op == "within_last" else f" (before {edge})"
        seen = "is missing" if actual is None else f"is {_show(actual)}"
        return {
            "condition": spec,
            "matched": test(facts),
            "actual": _plain(actual),
            "reason": f"{path.label} {seen}, expected {detail}",
        }

    return _Compiled(test, explain)


def _behaviour_node(spec: dict[str, Any], name: str, low: int, high: int, days: int | None) -> _Compiled:
    count: Callable[[Facts], int]
    if days is None:

        def count(facts: Facts) -> int:
            profile = facts.profile
            return 0 if profile is None else profile.event_counts.get(name, 0)

    else:
        window = days

        def count(facts: Facts) -> int:
            profile = facts.profile
            buckets = None if profile is None else profile.daily_counts.get(name)
            return windowed_count(buckets, facts.now, window) if buckets else 0

    def test(facts: Facts) -> bool:
        return low <= count(facts) <= high

    if "exactly" in spec:
        expected = f"exactly {low}"
    elif "at_most" in spec:
        expected = f"at most {high}" if "at_least" not in spec else f"between {low} and {high}"
    else:
        expected = f"at least {low}"
    period = "in all" if days is None else f"in the last {days} days"

    def explain(facts: Facts) -> dict[str, Any]:
        seen = count(facts)
        return {
            "condition": spec,
            "matched": low <= seen <= high,
            "actual": seen,
            "reason": f"did {name!r} {seen} time{'' if seen == 1 else 's'} {period}, expected {expected}",
        }

    return _Compiled(test, explain)


# ----------------------------------------------------------------------------- regex safety
_CATEGORIES = {
    "CATEGORY_DIGIT": re.compile(r"\d").match,
    "CATEGORY_NOT_DIGIT": re.compile(r"\D").match,
    "CATEGORY_SPACE": re.compile(r"\s").match,
    "CATEGORY_NOT_SPACE": re.compile(r"\S").match,
    "CATEGORY_WORD": re.compile(r"\w").match,
    "CATEGORY_NOT_WORD": re.compile(r"\W").match,
}
# Characters that stand for the classes patterns use; a pattern's own literals and range ends
# are added, so two classes that share any character share one of these.
_PROBES = "".join(map(chr, range(256))) + "\u0660\u0130\u017f\u212a\u2028\u3000\u4e2d\U0001f600"
_SINGLE = frozenset({"LITERAL", "NOT_LITERAL", "ANY", "IN"})
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT"})


@lru_cache(maxsize=256)  # a definition may repeat one pattern in many of its 500 nodes
def _regex_problem(pattern: str) -> str | None:
    """Why a pattern could run away on a hostile value, or None when it is safe to run.

    Python's backtracking engine cannot be interrupted, so a pattern is refused unless its
    shape bounds the work. Refused outright: a quantifier inside a quantified group (other than
    a fixed count like \\d{3}), alternation inside a quantified group, backreferences and
    conditionals, lookarounds, atomic groups and possessive quantifiers. Then the work is
    estimated: quantifiers in a row that can match the same characters multiply each other's
    backtracking until a required character none of them can match; searching (no leading ^)
    multiplies once more by the length. The estimate must stay within REGEX_WORK_BUDGET.
    """
    try:
        parsed = _sre_parser.parse(pattern)
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError) as error:
        return f"not a valid regular expression: {error}"
    problem = _shape_problem(list(parsed), in_repeat=False)
    if problem:
        return problem
    flags = parsed.state.flags
    probes, scoped_flags = _probe_set(list(parsed))
    items = list(_flatten(list(parsed)))
    starts = {"AT_BEGINNING_STRING"} if flags & re.MULTILINE else {"AT_BEGINNING", "AT_BEGINNING_STRING"}
    anchored = bool(items) and str(items[0][0]) == "AT" and str(items[0][1]) in starts
    classes = _Classes(probes, ignore_case=bool((flags | scoped_flags) & re.IGNORECASE))
    work = _sequence_work(items, classes) * (1 if anchored else REGEX_WINDOW)
    if work > REGEX_WORK_BUDGET:
        return (
            "this pattern can backtrack too much on long values: quantifiers in a row match the same "
            "characters (like \\d+\\d+ or .*a.*); anchor it with ^, or separate them with a character "
            "they cannot match"
        )
    return None


def _shape_problem(items: list[Any], *, in_repeat: bool) -> str | None:
    for op, argument in items:
        name = str(op)
        if name in _REPEATS:
            low, high, body = argument
            if in_repeat and low != high:
                return "nested quantifiers (a repeat inside a repeat, like (a+)+) are not allowed"
            problem = _shape_problem(list(body), in_repeat=True)
        elif name == "SUBPATTERN":
            problem = _shape_problem(list(argument[-1]), in_repeat=in_repeat)
        elif name == "BRANCH":
            if in_repeat:
                return "alternation inside a repeat (like (a|aa)*) is not allowed"
            problem = next((p for b in argument[1] if (p := _shape_problem(list(b), in_repeat=False))), None)
        elif name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "backreferences and conditional groups are not allowed"
        elif name in ("ASSERT", "ASSERT_NOT"):
            return "lookahead and lookbehind are not allowed"
        elif name in ("ATOMIC_GROUP", "POSSESSIVE_REPEAT"):
            return "atomic groups and possessive quantifiers are not allowed"
        elif name in _SINGLE or name == "AT":
            problem = None
        else:
            return f"unsupported regular expression construct {name}"
        if problem:
            return problem
    return None


def _flatten(items: list[Any]) -> Any:
    """Items of a sequence with plain groups opened, so (a+)(a+) reads as a+a+."""
    for op, argument in items:
        if str(op) == "SUBPATTERN":
            yield from _flatten(list(argument[-1]))
        else:
            yield op, argument


def _probe_set(items: list[Any]) -> tuple[str, int]:
    """The characters to probe classes with, and the flags any group turns on."""
    extra: list[str] = []
    scoped = 0

    def collect(nodes: list[Any]) -> None:
        nonlocal scoped
        for op, argument in nodes:
            name = str(op)
            if name in ("LITERAL", "NOT_LITERAL"):
                extra.append(chr(argument))
            elif name == "RANGE":
                extra.extend((chr(argument[0]), chr(argument[1])))
            elif name == "IN":
                collect(list(argument))
            elif name in _REPEATS:
                collect(list(argument[2]))
            elif name == "SUBPATTERN":
                scoped |= argument[1]
                collect(list(argument[-1]))
            elif name == "BRANCH":
                for branch in argument[1]:
                    collect(list(branch))

    collect(items)
    return "".join(dict.fromkeys(_PROBES + "".join(extra))), scoped


@lru_cache(maxsize=4096)
def _in_category(category: str, char: str) -> bool:
    match = _CATEGORIES.get(category)
    return True if match is None else match(char) is not None


class _Classes:
    """Which probe characters the parts of one pattern can consume (memoised per part)."""

    def __init__(self, probes: str, *, ignore_case: bool) -> None:
        self.probes = probes
        self.everything = frozenset(probes)
        self.ignore_case = ignore_case
        self.memo: dict[tuple[str, str], frozenset[str]] = {}

    def of(self, items: list[Any]) -> frozenset[str]:
        found: set[str] = set()
        for op, argument in _flatten(items):
            name = str(op)
            if name in _SINGLE:
                found |= self.single(name, argument)
            elif name in _REPEATS:
                found |= self.of(list(argument[2]))
            elif name == "BRANCH":
                for branch in argument[1]:
                    found |= self.of(list(branch))
        return frozenset(found)

    def single(self, name: str, argument: Any) -> frozenset[str]:
        key = (name, repr(argument))
        known = self.memo.get(key)
        if known is not None:
            return known
        if name == "ANY":
            result = self.everything
        else:
            members = list(argument) if name == "IN" else [("LITERAL", argument)]
            negate = name == "NOT_LITERAL" or (bool(members) and str(members[0][0]) == "NEGATE")
            members = [(str(kind), value) for kind, value in members if str(kind) != "NEGATE"]

            def raw(char: str) -> bool:
                hit = len(char) == 1 and any(
                    (kind == "LITERAL" and ord(char) == value)
                    or (kind == "RANGE" and value[0] <= ord(char) <= value[1])
                    or (kind == "CATEGORY" and _in_category(str(value), char))
                    or kind not in ("LITERAL", "RANGE", "CATEGORY")  # unknown: assume it matches
                    for kind, value in members
                )
                return hit != negate

            if self.ignore_case:
                result = frozenset(c for c in self.probes if raw(c) or raw(c.lower()) or raw(c.upper()))
            else:
                result = frozenset(c for c in self.probes if raw(c))
        self.memo[key] = result
        return result


def _sequence_work(items: list[Any], classes: _Classes) -> int:
    """Worst backtracking of a sequence: the largest product of choices in a run of items
    that can trade characters, a run ending at a required character none of them can match."""
    worst = 1
    run_sets: list[frozenset[str]] = []
    run_work = 1
    for op, argument in items:
        name = str(op)
        if name == "AT":
            continue
        if name in _SINGLE:
            choices, required = 1, True
            chars = classes.single(name, argument)
        elif name in _REPEATS:
            low, high, body = argument
            choices = max(1, min(high - low + 1, REGEX_WINDOW))  # it can give back at most the whole value
            required = low >= 1
            chars = classes.of(list(body))
        else:  # BRANCH: each alternative's own work, tried in turn
            choices = sum(_sequence_work(list(_flatten(list(b))), classes) for b in argument[1])
            required = False
            chars = classes.of([(op, argument)])
        if required and chars and all(chars.isdisjoint(open_set) for open_set in run_sets):
            run_sets, run_work = [], 1
        if choices > 1:
            run_sets.append(chars)
            run_work = min(run_work * choices, REGEX_WORK_BUDGET * REGEX_WINDOW + 1)
            worst = max(worst, run_work)
    return worst
