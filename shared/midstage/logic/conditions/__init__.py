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
`segments`, `identities.<type>`, and `predicted.<score>` (the refit's score, `traits.predicted.
<score>.value`; `predicted.<score>.percentile` its rank, docs/predictions.md). Dicts are walked by
key; lists are not indexed.

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
`regex.regex_problem` (no nested quantifiers, backreferences, lookarounds, atomic groups, possessive
quantifiers or alternation inside a repeat, and a bound on how much backtracking adjacent
quantifiers can do on 2,048 characters).

The package, by concern (each module imports only those above it): `model` (limits, operators,
Facts, Issue, ConditionError, Condition), `values` (run-time values), `regex` (pattern safety),
`paths` (path syntax and getters), `nodes` (checks and node closures), `compiler` (validate and
compile_condition). Import from the package; the modules are its private layout.
"""

from midstage.logic.conditions.compiler import compile_condition, validate
from midstage.logic.conditions.model import (
    DEFAULT_MAX_WINDOW_DAYS,
    MAX_COUNT,
    MAX_DEPTH,
    MAX_ISSUES,
    MAX_LIST_VALUES,
    MAX_NODES,
    MAX_PATH_SEGMENTS,
    MAX_PATTERN,
    MAX_STRING,
    OPERATORS,
    REGEX_WINDOW,
    REGEX_WORK_BUDGET,
    Condition,
    ConditionError,
    Facts,
    Issue,
)
from midstage.logic.conditions.paths import split_path

__all__ = [
    "DEFAULT_MAX_WINDOW_DAYS",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_ISSUES",
    "MAX_LIST_VALUES",
    "MAX_NODES",
    "MAX_PATH_SEGMENTS",
    "MAX_PATTERN",
    "MAX_STRING",
    "OPERATORS",
    "REGEX_WINDOW",
    "REGEX_WORK_BUDGET",
    "Condition",
    "ConditionError",
    "Facts",
    "Issue",
    "compile_condition",
    "split_path",
    "validate",
]
