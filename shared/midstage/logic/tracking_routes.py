"""Which tracking action a request path names: the paths every Segment and RudderStack SDK uses.

The collect function is also the API's `$default` route, so it sees unrouted paths too; this
module says which of them are its own. `match` reads the same rules the collect function's
resolver routes by, so its routes, its preflight answers and this module cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# The spec's call names and the one-letter paths Segment's browser and mobile libraries post to
# (`/v1/t` for track, ..., `/v1/b` for a batch); `import` is Segment's older name for a batch.
CALLS: dict[str, str] = {
    "track": "track",
    "identify": "identify",
    "page": "page",
    "screen": "screen",
    "group": "group",
    "alias": "alias",
    "batch": "batch",
    "import": "batch",
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
    "b": "batch",
}

RouteKind = Literal["collect", "segment_settings", "rudder_config"]

# The paths, each written once, as route rules of the collect function's resolver: regular
# expressions over the whole percent-decoded path, without groups (the resolver would pass a named
# group to the route as an argument, and reads `<name>` as one of its own placeholders).
# POST: one of the calls above.
CALL_RULE = "/v1/(?:" + "|".join(sorted(CALLS, key=len, reverse=True)) + ")"
# POST: RudderStack's beacon transport; `navigator.sendBeacon` cannot set headers, so the key rides in the query.
BEACON_RULE = "/beacon/v1/batch"
# GET: the settings Segment's libraries fetch for the write key in the path.
SEGMENT_SETTINGS_RULE = "/v1/projects/[^/]+/settings"
# GET: RudderStack's SDK asks for `<configUrl>/sourceConfig/?...` (with the slash) unless told the full path.
RUDDER_CONFIG_RULE = "/sourceConfig/?"

_CALL, _BEACON, _SEGMENT_SETTINGS, _RUDDER_CONFIG = (
    re.compile(rule) for rule in (CALL_RULE, BEACON_RULE, SEGMENT_SETTINGS_RULE, RUDDER_CONFIG_RULE)
)


@dataclass(frozen=True)
class TrackingRoute:
    kind: RouteKind
    endpoint: str = ""  # for "collect": a call type ("track", ...) or "batch"
    write_key: str | None = None  # for "segment_settings": the key in the path
    beacon: bool = False


def match(method: str, path: str) -> TrackingRoute | None:
    """The tracking route for `method` and the (percent-decoded) `path`, or None."""
    if method == "POST":
        if _BEACON.fullmatch(path):
            return TrackingRoute("collect", endpoint="batch", beacon=True)
        if _CALL.fullmatch(path):
            return TrackingRoute("collect", endpoint=CALLS[path.removeprefix("/v1/")])
    elif method == "GET":
        if _SEGMENT_SETTINGS.fullmatch(path):
            return TrackingRoute("segment_settings", write_key=path.split("/")[3])
        if _RUDDER_CONFIG.fullmatch(path):
            return TrackingRoute("rudder_config")
    return None


def is_tracking_path(path: str) -> bool:
    """Whether a preflight for `path` is for the tracking API (any method), not the admin API."""
    return any(match(method, path) is not None for method in ("POST", "GET"))
