"""Which tracking action a request path names: the paths every Segment and RudderStack SDK uses.

The collect function is also the API's `$default` route, so it sees unrouted paths too; this
module says which of them are its own.
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

_CALL = re.compile(r"/v1/(?P<call>[a-z]+)")
# RudderStack's beacon transport: `navigator.sendBeacon` cannot set headers, so the key rides in the query.
_BEACON = "/beacon/v1/batch"
_SEGMENT_SETTINGS = re.compile(r"/v1/projects/(?P<key>[^/]+)/settings")
# RudderStack's SDK asks for `<configUrl>/sourceConfig/?...` (with the slash) unless told the full path.
_RUDDER_CONFIG = re.compile(r"/sourceConfig/?")


@dataclass(frozen=True)
class TrackingRoute:
    kind: RouteKind
    endpoint: str = ""  # for "collect": a call type ("track", ...) or "batch"
    write_key: str | None = None  # for "segment_settings": the key in the path
    beacon: bool = False


def match(method: str, path: str) -> TrackingRoute | None:
    """The tracking route for `method` and the (percent-decoded) `path`, or None."""
    if method == "POST":
        if path == _BEACON:
            return TrackingRoute("collect", endpoint="batch", beacon=True)
        call = _CALL.fullmatch(path)
        if call and call["call"] in CALLS:
            return TrackingRoute("collect", endpoint=CALLS[call["call"]])
    elif method == "GET":
        settings = _SEGMENT_SETTINGS.fullmatch(path)
        if settings:
            return TrackingRoute("segment_settings", write_key=settings["key"])
        if _RUDDER_CONFIG.fullmatch(path):
            return TrackingRoute("rudder_config")
    return None


def is_tracking_path(path: str) -> bool:
    """Whether a preflight for `path` is for the tracking API (any method), not the admin API."""
    return any(match(method, path) is not None for method in ("POST", "GET"))
