"""Cross-origin answers for browsers, decided by the functions rather than by API Gateway.

An HTTP API's own CORS configuration answers every origin alike and replaces whatever the
function says: with `AllowOrigins: *` browsers refuse credentialed requests (a `sendBeacon` with a
JSON Blob, a `fetch` with `credentials: "include"`), and a fixed origin list cannot follow each
source's `allowed_origins`. So the API has no CORS configuration; its `$default` route (the collect
function) answers preflights and unrouted paths, and every answer of the tracking and admin
functions carries its own headers (docs/architecture.md, "CORS").

Pure: header dictionaries in, header dictionaries out.
"""

from __future__ import annotations

from collections.abc import Iterable

# Every request header the browser SDKs send, read from their sources (docs/sdks.md lists them):
# Segment analytics-next sends Authorization with its text/plain body and X-Retry-Count on retries;
# RudderStack's v3 SDK sends AnonymousId and SentAt, Rsa-Recovered for events reclaimed from
# storage, and four Rsa-* headers on retries. Accept is safelisted by the Fetch standard.
TRACKING_REQUEST_HEADERS = (
    "authorization",
    "content-type",
    "content-encoding",
    "x-retry-count",
    "anonymousid",
    "sentat",
    "rsa-recovered",
    "rsa-retry-attempt",
    "rsa-since-last-attempt",
    "rsa-since-first-attempt",
    "rsa-retry-reason",
)
TRACKING_METHODS = ("GET", "POST", "OPTIONS")
ADMIN_REQUEST_HEADERS = ("authorization", "content-type", "content-encoding", "x-api-key", "if-match")
ADMIN_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# SDKs honour Retry-After on 429 and 503 only if the page may read it.
EXPOSED_HEADERS = ("retry-after",)
# Chromium caps a cached preflight at two hours; each preflight is a function invocation.
PREFLIGHT_MAX_AGE_S = 7200


def origin_allowed(allowed_origins: Iterable[str], origin: str | None) -> bool:
    """Whether a source accepts a browser request from `origin`: any origin when the list is empty
    or holds `*`; requests without an Origin (servers, apps) always."""
    if not origin:
        return True
    allowed = {entry.rstrip("/") for entry in allowed_origins}
    return not allowed or "*" in allowed or origin.rstrip("/") in allowed


def preflight_headers(tracking: bool, origin: str) -> dict[str, str]:
    """The answer to a preflight from `origin` for a tracking path or an admin path.

    A preflight carries no write key, so it cannot know the source; the request that follows is
    checked against the source's origins. Tracking paths echo the origin and allow credentials,
    which beacons need; the admin API authenticates with a bearer key, never a cookie, so it
    allows any origin without credentials.
    """
    methods: tuple[str, ...]
    requested: tuple[str, ...]
    if tracking:
        headers = tracking_response_headers(origin, allowed=True)
        methods, requested = TRACKING_METHODS, TRACKING_REQUEST_HEADERS
    else:
        headers = admin_response_headers(origin)
        methods, requested = ADMIN_METHODS, ADMIN_REQUEST_HEADERS
    headers.pop("access-control-expose-headers", None)
    headers["access-control-allow-methods"] = ", ".join(methods)
    headers["access-control-allow-headers"] = ", ".join(requested)
    headers["access-control-max-age"] = str(PREFLIGHT_MAX_AGE_S)
    return headers


def tracking_response_headers(origin: str | None, *, allowed: bool) -> dict[str, str]:
    """Headers for an answer of the tracking API (events, SDK settings, errors and 404s alike).

    The origin is echoed, never `*`, so credentialed requests pass; an origin the source does not
    allow is not echoed, so a foreign page cannot read what this source answers.
    """
    headers = {"vary": "Origin"}
    if origin and allowed:
        headers["access-control-allow-origin"] = origin
        headers["access-control-allow-credentials"] = "true"
        headers["access-control-expose-headers"] = ", ".join(EXPOSED_HEADERS)
    return headers


def admin_response_headers(origin: str | None) -> dict[str, str]:
    """Headers for an answer of the admin API: readable from any origin, never with credentials."""
    if not origin:
        return {}
    return {"access-control-allow-origin": "*", "access-control-expose-headers": ", ".join(EXPOSED_HEADERS)}
