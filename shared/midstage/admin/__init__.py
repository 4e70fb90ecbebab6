"""The admin API as Powertools Routers, one module per resource, each included under its prefix.

`ROUTERS` is the whole API: `functions/admin/handler.py` includes every router, and
`route_table()` lists every route with the least role it needs (tests compare it with
docs/openapi.yaml). A new resource is a module here with `routes = Routes()`, one line in
`ROUTERS`, its service in `services/admin/` and its request bodies in `models/requests.py`.
"""

from __future__ import annotations

from midstage.admin import (
    api_keys,
    assets,
    attribution,
    audit,
    campaigns,
    channels,
    dead_letters,
    destinations,
    experiments,
    imports,
    journeys,
    messages,
    offers,
    predictions,
    profiles,
    regulations,
    reports,
    rules,
    segments,
    settings,
    sources,
    spend,
    suppressions,
    templates,
)
from midstage.admin.routing import Routes, RouteSpec

ROUTERS: tuple[tuple[str, Routes], ...] = (
    ("/v1/sources", sources.routes),
    ("/v1/api-keys", api_keys.routes),
    ("/v1/profiles", profiles.routes),
    ("/v1/rules", rules.routes),
    ("/v1/templates", templates.routes),
    ("/v1/messages", messages.routes),
    ("/v1/suppressions", suppressions.routes),
    ("/v1/settings", settings.routes),
    ("/v1/settings/channels", channels.routes),
    ("/v1/segments", segments.routes),
    ("/v1/imports", imports.routes),
    ("/v1/campaigns", campaigns.routes),
    ("/v1/journeys", journeys.routes),
    ("/v1/dead-letters", dead_letters.routes),
    ("/v1/reports", reports.routes),
    ("/v1/attribution", attribution.routes),
    ("/v1/experiments", experiments.routes),
    ("/v1/spend", spend.routes),
    ("/v1/offers", offers.routes),
    ("/v1/destinations", destinations.routes),
    ("/v1/regulations", regulations.routes),
    ("/v1/assets", assets.routes),
    ("/v1/audit", audit.routes),
    ("/v1/predictions", predictions.routes),
)


def route_table() -> list[RouteSpec]:
    """Every admin route, as served: its method, its full path and the least role it needs."""
    return [spec.under(prefix) for prefix, routes in ROUTERS for spec in routes.table]
