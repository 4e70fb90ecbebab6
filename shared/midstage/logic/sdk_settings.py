"""The configuration documents the SDKs fetch before sending, pointing them back at this Midstage.

Segment's libraries read `<cdn>/v1/projects/<writeKey>/settings` (analytics-next, analytics-swift,
analytics-kotlin, analytics-react-native) and RudderStack's JavaScript SDK reads
`<configUrl>/sourceConfig/`. Both documents name no destination, turn the vendor's own metrics and
error reports off, and (Segment's) name this API as the host to send to, so a site needs no vendor
CDN or control plane at all. The fields are those the SDKs' sources read; see docs/sdks.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from midstage.models.admin import Source


@dataclass(frozen=True)
class ApiBase:
    """Where this API was reached, as the SDK reached it: scheme and host (with any port)."""

    scheme: str
    host: str

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> ApiBase | None:
        """From the request's Host and X-Forwarded-Proto headers (lower-case names), as API Gateway
        passes them; None when the request has no usable Host."""
        host = (headers.get("host") or "").strip()
        if not host or any(char in host for char in "/\\ @?#"):
            return None
        scheme = (headers.get("x-forwarded-proto") or "https").split(",")[0].strip().lower()
        return cls("http" if scheme == "http" else "https", host)


def segment_settings(write_key: str, api: ApiBase) -> dict[str, Any]:
    """Segment's project settings: only the Segment.io destination, aimed at this API.

    `apiHost` has no scheme, as Segment's libraries expect (the mobile ones always add https://;
    analytics-next adds `protocol`). `metrics.sampleRate` 0 stops the libraries' own telemetry, and
    no plan, middleware, remote plugin or legacy destination is named, so nothing else is loaded.
    """
    api_host = f"{api.host}/v1"
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": api.scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": False,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0, "host": api_host},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
        "consentSettings": {"allCategories": [], "hasUnmappedDestinations": False},
        "autoInstrumentation": {"enabled": False},
    }


def rudder_source_config(source: Source, write_key: str) -> dict[str, Any]:
    """RudderStack's source configuration: enabled, no device-mode destination, no error or metrics
    reporting. The data plane is the `dataPlaneUrl` the page loads the SDK with."""
    return {
        "isHosted": False,
        "source": {
            "id": source.id,
            "name": source.name,
            "writeKey": write_key,
            "workspaceId": "midstage",
            "enabled": source.enabled,
            "config": {"statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}},
            "destinations": [],
        },
    }
