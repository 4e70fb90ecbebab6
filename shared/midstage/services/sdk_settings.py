"""The settings the SDKs fetch before sending: the write key's source, checked, as a vendor document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from midstage.errors import Forbidden, InvalidInput, Unauthorized, Unavailable
from midstage.logic import sdk_settings
from midstage.logic.collect import write_key_from_authorization
from midstage.logic.cors import origin_allowed
from midstage.logic.tracking_routes import TrackingRoute
from midstage.models.admin import Source
from midstage.services.collect import Sources


def settings(
    kind: Literal["segment", "rudder"],
    write_key: str | None,
    *,
    origin: str | None,
    api: sdk_settings.ApiBase | None,
    sources: Sources,
) -> dict[str, Any]:
    """The document for `kind`, for the source of `write_key`, as a sender from `origin` may see it."""
    if not write_key:
        raise Unauthorized("a write key is required (HTTP Basic user name or 'writeKey' in the query)")
    try:
        source: Source | None = sources.source_for_write_key(write_key)
    except Exception as error:
        raise Unavailable("write keys cannot be checked right now; retry the request") from error
    if source is None:
        raise Unauthorized("the write key is not valid")
    if not source.enabled:
        raise Forbidden("this source is disabled", code="source_disabled")
    if not origin_allowed(source.allowed_origins, origin):
        raise Forbidden(f"origin '{(origin or '')[:200]}' is not allowed for this source", code="origin_not_allowed")
    if kind == "rudder":
        return sdk_settings.rudder_source_config(source, write_key)
    if api is None:
        raise InvalidInput("the request has no Host header to point the SDK back at")
    return sdk_settings.segment_settings(write_key, api)


def for_route(
    route: TrackingRoute, headers: dict[str, str], query: Mapping[str, str], *, sources: Sources
) -> dict[str, Any]:
    """The settings document an SDK asks for at `route`: Segment's (the key in the path, the API
    base from the request's host) or RudderStack's source config."""
    origin = headers.get("origin")
    if route.kind == "segment_settings":
        api = sdk_settings.ApiBase.from_headers(headers)
        return settings("segment", route.write_key, origin=origin, api=api, sources=sources)
    # RudderStack sends the key both as HTTP Basic and in the query; either is enough.
    key = write_key_from_authorization(headers.get("authorization")) or query.get("writeKey")
    return settings("rudder", key, origin=origin, api=None, sources=sources)
