"""Browser tier: the real tracking SDKs, unchanged but for the host, against one local cloud.

Browser SDKs run in Debian's headless Chromium, driven by Playwright, on pages served from another
origin (a second local HTTP server, as a real site is); the Node SDKs run in Node; the Python SDKs
in this process. The npm packages are pinned in package.json / package-lock.json beside this file
(`npm ci --prefix tests/browser`).

Without Chromium, Node or the npm packages the tests that need them skip with the reason; with
MIDSTAGE_REQUIRE_BROWSER_TIER=1 (set by .ci/run) they fail instead, so CI cannot pass by skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.demo import bootstrap
from tests.e2e.conftest import Platform

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
CHROMIUM = Path(os.environ.get("MIDSTAGE_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("MIDSTAGE_REQUIRE_BROWSER_TIER") == "1"
# The flags that let Chromium run headless as root on a machine whose network is closed.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Each SDK's own built browser bundle, served from node_modules as a site would self-host it.
BUNDLES = {
    "segment": NODE_MODULES / "@segment" / "analytics-next" / "dist" / "umd",
    "rudderstack": NODE_MODULES / "@rudderstack" / "analytics-js" / "dist" / "npm" / "modern" / "bundled" / "umd",
}
# How long an SDK may take to deliver; an upper bound for waiting, never an assertion on speed.
DELIVERY_WAIT_S = 60.0

T = TypeVar("T")


def _unavailable(needs: list[tuple[bool, str]]) -> None:
    missing = [reason for present, reason in needs if not present]
    if not missing:
        return
    message = "browser tier: " + "; ".join(missing)
    if REQUIRED:
        pytest.fail(message + " (MIDSTAGE_REQUIRE_BROWSER_TIER=1 makes this a failure)", pytrace=False)
    pytest.skip(message)


def _node_needs() -> list[tuple[bool, str]]:
    return [
        (shutil.which("node") is not None, "Node.js is not installed (node not on PATH)"),
        (NODE_MODULES.is_dir(), "the SDK packages are not installed: run `npm ci --prefix tests/browser`"),
    ]


@pytest.fixture(scope="session")
def node_sdks() -> str:
    """The node executable, once Node and the npm packages are known to be there."""
    _unavailable(_node_needs())
    node = shutil.which("node")
    assert node is not None
    return node


# ------------------------------------------------------------------------------------------ platform
@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    """One local cloud for the whole tier."""
    with LocalCloud(manual_clock=True, parameters={"ConfigCacheSeconds": "0"}) as cloud:
        source, admin_key = bootstrap(cloud, echo=False)
        yield Platform(cloud, source.write_key, source.id, admin_key)


def eventually(check: Callable[[], T], *, timeout: float = DELIVERY_WAIT_S) -> T:
    """`check()`'s result once it stops failing an assertion; its last failure after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(1.0)


def profile_when(platform: Platform, ref: str, condition: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The profile `ref` once `condition` (assertions over it) holds."""
    platform.settle()

    def check() -> dict[str, Any]:
        answer = platform.admin("GET", f"/v1/profiles/{ref}")
        assert answer.status == 200, (ref, answer.status, answer.body)
        condition(answer.body)
        return answer.body  # type: ignore[no-any-return]

    return eventually(check)


def person() -> dict[str, str]:
    run = uuid.uuid4().hex[:10]
    return {
        "user": f"web-{run}",
        "email": f"Web.{run}@Example.com",
        "group": f"acme-{run}",
        "previous": f"old-device-{run}",
        "anonymous": f"anon-{run}",  # for server SDKs; a browser SDK makes its own
    }


def one_profile(platform: Platform, person: dict[str, str], anonymous_id: str) -> dict[str, Any]:
    """The profile the common scenario builds (page and track while anonymous, identify, group,
    alias, an order), once every call has reached it."""

    def complete(profile: dict[str, Any]) -> None:
        counts = profile["computed"]["event_counts"]
        assert counts.get("$page", {}).get("total") == 1, counts
        assert counts.get("Product Viewed", {}).get("total") == 1, counts
        assert counts.get("Order Completed", {}).get("total") == 1, counts
        assert profile.get("groups") == {person["group"]: {"name": "Acme"}}, profile.get("groups")
        assert person["previous"] in profile["identities"].get("anonymous_id", []), profile["identities"]

    profile = profile_when(platform, f"user_id:{person['user']}", complete)
    assert profile["identities"]["user_id"] == [person["user"]]
    assert profile["identities"]["email"] == [person["email"].lower()]
    assert sorted(profile["identities"]["anonymous_id"]) == sorted([anonymous_id, person["previous"]])
    assert profile["traits"]["plan"] == "pro"
    # The anonymous page view and the signed-in order are one person, found by any identifier.
    assert platform.profile(f"anonymous_id:{anonymous_id}")["id"] == profile["id"]
    return profile


# ------------------------------------------------------------------------------------------ the site
class _SiteHandler(SimpleHTTPRequestHandler):
    pages: dict[str, str]

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        if path in self.pages:
            body = self.pages[path].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def translate_path(self, path: str) -> str:
        # /vendor/<sdk>/<file> is the SDK's own bundle directory; nothing else is served from disk.
        parts = urlsplit(path).path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "vendor" and parts[1] in BUNDLES and ".." not in parts[2]:
            return str(BUNDLES[parts[1]] / parts[2])
        return str(HERE / "missing")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Site:
    """A web site on another origin than the API: `http://localhost:<port>` against `127.0.0.1`."""

    url: str
    pages: dict[str, str]

    def publish(self, name: str, html: str) -> str:
        self.pages[f"/{name}.html"] = html
        return f"{self.url}/{name}.html"


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    pages: dict[str, str] = {}
    handler = type("Handler", (_SiteHandler,), {"pages": pages})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(HERE)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield Site(f"http://localhost:{server.server_address[1]}", pages)
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------ the browser
@dataclass
class Traffic:
    """Every request a page made, and what went wrong on the way."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    responses: list[tuple[str, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def hosts(self) -> set[str]:
        return {urlsplit(r["url"]).netloc for r in self.requests}

    def to(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if urlsplit(r["url"]).path == path]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright, one for the session (a process runs one sync Playwright)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev dependency; only a broken install lacks it
        sync_playwright = None
    _unavailable(
        [
            (CHROMIUM.exists(), f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)"),
            (sync_playwright is not None, "the playwright Python package is not installed (make install)"),
        ]
    )
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def browser(chromium: Any) -> Any:
    """Chromium for the SDK tests, which also need Node and the npm packages."""
    _unavailable(_node_needs())
    return chromium


@dataclass
class Tab:
    page: Any
    traffic: Traffic


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    """A fresh browser profile (no storage, no cache) with one page whose traffic is recorded."""
    context = browser.new_context()
    traffic = Traffic()

    def on_request(request: Any) -> None:
        traffic.requests.append({"url": request.url, "method": request.method, "headers": dict(request.headers)})

    context.on("request", on_request)
    context.on("response", lambda r: traffic.responses.append((r.url, r.status)))
    context.on("requestfailed", lambda r: traffic.failures.append(f"{r.method} {r.url}: {r.failure}"))
    page = context.new_page()
    page.on("console", lambda m: traffic.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: traffic.console_errors.append(f"page error: {e}"))
    try:
        yield Tab(page, traffic)
    finally:
        context.close()


@dataclass(frozen=True)
class Arrival:
    """One request as the collect function received it, and its answer."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int | None
    answer_headers: dict[str, str]

    @property
    def from_a_page(self) -> bool:
        return "origin" in self.headers


def arrivals(platform: Platform, since: datetime) -> list[Arrival]:
    """What reached the collect function since `since`, preflights included, oldest first.

    Read on the server side because Playwright does not report beacons, nor a keepalive request
    sent by a page that is already gone.
    """
    found = []
    for record in platform.cloud.invocations("CollectFunction"):
        if record.started_at < since:
            continue
        event, answer = record.event, record.payload if isinstance(record.payload, dict) else {}
        found.append(
            Arrival(
                method=event["requestContext"]["http"]["method"],
                path=event["rawPath"],
                query=event.get("rawQueryString", ""),
                headers=event.get("headers", {}),
                status=answer.get("statusCode"),
                answer_headers={k.lower(): str(v) for k, v in (answer.get("headers") or {}).items()},
            )
        )
    return found


def assert_stayed_home(traffic: Traffic, site: Site, platform: Platform) -> None:
    """No request left for any host but the site's and this Midstage's."""
    home = {urlsplit(site.url).netloc, urlsplit(platform.url).netloc}
    assert traffic.hosts() <= home, f"requests left for {sorted(traffic.hosts() - home)}"
    cors = [m for m in traffic.console_errors if "CORS" in m or "Access-Control" in m]
    assert cors == [], cors


def js(value: Any) -> str:
    """A Python value as a JavaScript literal, for page templates."""
    return json.dumps(value)
