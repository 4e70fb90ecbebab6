"""The browser SDKs from the npm registry, self-hosted by a page on another origin, in Chromium.

Each test loads one SDK's own bundle with only the host changed, runs the same calls (page and
track while anonymous, identify, group, alias, then an order) and reads back the one profile they
built. No request may leave for a vendor host.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from tests.browser.conftest import (
    DELIVERY_WAIT_S,
    Arrival,
    Site,
    Tab,
    arrivals,
    assert_stayed_home,
    js,
    one_profile,
    person,
    profile_when,
)
from tests.e2e.conftest import Platform


# ------------------------------------------------------------------------------------------ Segment
def _segment_page(platform: Platform, write_key: str, scenario: str, load_options: dict[str, Any] | None = None) -> str:
    """A page that self-hosts analytics-next's standalone bundle behind a snippet-style stub.

    The only Midstage-specific line is `_cdn`: the library fetches its settings from there, and
    the settings name this Midstage as the host to send to.
    """
    return f"""<!doctype html>
<html><head><title>Shop</title>
<script>
(function () {{
  var analytics = (window.analytics = window.analytics || []);
  ["page", "track", "identify", "group", "alias", "screen", "ready", "reset", "on", "once", "off",
   "setAnonymousId", "addSourceMiddleware", "register"].forEach(function (method) {{
    analytics[method] = function () {{
      var args = Array.prototype.slice.call(arguments);
      args.unshift(method);
      analytics.push(args);
      return analytics;
    }};
  }});
  analytics._writeKey = {js(write_key)};
  analytics._cdn = {js(platform.url)};
  analytics._loadOptions = {js(load_options or {})};
  var script = document.createElement("script");
  script.async = true;
  script.src = "/vendor/segment/standalone.js";
  document.head.appendChild(script);
}})();
</script></head>
<body><h1>Shop</h1><script>{scenario}</script></body></html>"""


def _segment_scenario(person: dict[str, str], *, wait: bool = True) -> str:
    call = "await " if wait else ""
    return f"""
analytics.ready(async function () {{
  var a = window.analytics;
  var contexts = [];
  contexts.push({call}a.page("Pricing", {{ plan: "pro" }}));
  contexts.push({call}a.track("Product Viewed", {{ sku: "A-1" }}));
  contexts.push({call}a.identify({js(person["user"])}, {{ email: {js(person["email"])}, plan: "pro" }}));
  contexts.push({call}a.group({js(person["group"])}, {{ name: "Acme" }}));
  contexts.push({call}a.alias({js(person["user"])}, {js(person["previous"])}));
  contexts.push({call}a.track("Order Completed", {{ revenue: 42 }}));
  var settled = await Promise.all(contexts);
  window.__result = {{
    anonymousId: a.user().anonymousId(),
    failed: settled.filter(function (c) {{ return c.failedDelivery(); }})
                   .map(function (c) {{ return String(c.failedDelivery().reason); }}),
  }};
}});
"""


def test_segment_analytics_next_builds_one_profile_with_only_the_host_changed(
    platform: Platform, site: Site, tab: Tab
) -> None:
    person_ = person()
    url = site.publish("segment", _segment_page(platform, platform.write_key, _segment_scenario(person_)))

    tab.page.goto(url)
    tab.page.wait_for_function("window.__result !== undefined", timeout=60_000)
    result = tab.page.evaluate("window.__result")

    assert result["failed"] == []
    one_profile(platform, person_, result["anonymousId"])
    settings = tab.traffic.to(f"/v1/projects/{platform.write_key}/settings")
    assert len(settings) == 1
    assert {r["method"] for r in tab.traffic.to("/v1/t")} == {"POST"}
    assert all(tab.traffic.to(f"/v1/{short}") for short in ("p", "t", "i", "g", "a"))
    sent = [r for r in tab.traffic.to("/v1/i") if r["method"] == "POST"]
    assert sent[0]["headers"]["content-type"] == "text/plain"
    assert_stayed_home(tab.traffic, site, platform)


def test_segment_batching_sends_every_call_in_one_short_path_batch(platform: Platform, site: Site, tab: Tab) -> None:
    person_ = person()
    batching = {"strategy": "batching", "config": {"size": 6, "timeout": 1000}}
    options = {"integrations": {"Segment.io": {"deliveryStrategy": batching}}}
    page = _segment_page(platform, platform.write_key, _segment_scenario(person_), options)

    tab.page.goto(site.publish("segment-batching", page))
    tab.page.wait_for_function("window.__result !== undefined", timeout=60_000)
    result = tab.page.evaluate("window.__result")

    assert result["failed"] == []
    one_profile(platform, person_, result["anonymousId"])
    assert tab.traffic.to("/v1/b"), "the batch goes to /v1/b"
    assert not any(tab.traffic.to(f"/v1/{short}") for short in ("p", "t", "i", "g", "a"))
    assert_stayed_home(tab.traffic, site, platform)


def test_segment_batches_left_when_the_page_closes_go_out_as_keepalive_requests(
    platform: Platform, site: Site, tab: Tab
) -> None:
    # Given a batch that would wait a minute, when the visitor leaves the page,
    # then analytics-next flushes it with a keepalive request, which outlives the page.
    person_ = person()
    batching = {"strategy": "batching", "config": {"size": 100, "timeout": 60_000}}
    options = {"integrations": {"Segment.io": {"deliveryStrategy": batching}}}
    page = _segment_page(platform, platform.write_key, _segment_scenario(person_), options)

    since = datetime.now(UTC)
    tab.page.goto(site.publish("segment-leaving", page))
    tab.page.wait_for_function("window.__result !== undefined", timeout=60_000)
    result = tab.page.evaluate("window.__result")
    assert [a for a in arrivals(platform, since) if a.path == "/v1/b"] == []
    tab.page.goto(site.publish("elsewhere", "<!doctype html><title>Elsewhere</title><p>bye</p>"))

    one_profile(platform, person_, result["anonymousId"])
    # Playwright does not see a request of a page that is gone; the collect function does.
    batches = [a for a in arrivals(platform, since) if a.path == "/v1/b" and a.method == "POST"]
    assert [a.status for a in batches] == [200]
    assert batches[0].answer_headers["access-control-allow-origin"] == site.url
    assert_stayed_home(tab.traffic, site, platform)


def test_segment_retries_pass_the_preflight_and_read_retry_after(platform: Platform, site: Site, tab: Tab) -> None:
    # Given a source limited to one event a second and kept busy by another sender, when the page
    # sends, then its 429s reach the library with Retry-After readable, and the retries (with
    # X-Retry-Count) pass the preflight and land once the other sender stops.
    limited = platform.admin("POST", "/v1/sources", {"name": "limited web", "rate_limit": 1}).body
    run = person()["user"]
    scenario = f"""
analytics.ready(function () {{ window.__ready = true; }});
window.send = function () {{
  [1, 2, 3, 4].forEach(function (n) {{ window.analytics.track("Limited", {{ n: n }}, {{ userId: {js(run)} }}); }});
}};
"""
    since = datetime.now(UTC)
    tab.page.goto(site.publish("segment-limited", _segment_page(platform, limited["write_key"], scenario)))
    tab.page.wait_for_function("window.__ready === true", timeout=60_000)

    refused = _crowd_until_the_page_is_refused(platform, tab, limited["write_key"], since, "send()")

    profile_when(platform, f"user_id:{run}", lambda p: _assert_total(p, "Limited", 4))
    assert refused.answer_headers["access-control-allow-origin"] == site.url
    assert refused.answer_headers["access-control-expose-headers"] == "retry-after"
    assert refused.answer_headers["retry-after"] == "1"
    retried = [a for a in arrivals(platform, since) if a.from_a_page and "x-retry-count" in a.headers]
    assert 200 in {a.status for a in retried}, [(a.path, a.status) for a in retried]
    assert_stayed_home(tab.traffic, site, platform)


def _crowd_until_the_page_is_refused(
    platform: Platform, tab: Tab, write_key: str, since: datetime, start: str
) -> Arrival:
    """Keep a one-event-a-second source busy from this process (three senders, one request after
    another each) while the page, told to start by `start`, sends too; stop as soon as one of the
    page's requests gets a 429, so that its retries can pass. The refused arrival."""
    stop = threading.Event()

    def crowd() -> None:
        while not stop.is_set():
            platform.request(
                "POST", "/v1/track", {"userId": "crowd", "event": "Crowd"}, headers=platform.basic(write_key)
            )

    senders = [threading.Thread(target=crowd, daemon=True) for _ in range(3)]
    for sender in senders:
        sender.start()
    try:
        tab.page.evaluate(f"() => {{ {start}; }}")
        deadline = time.monotonic() + DELIVERY_WAIT_S
        while True:
            refused = [a for a in arrivals(platform, since) if a.from_a_page and a.status == 429]
            if refused:
                return refused[0]
            assert time.monotonic() < deadline, "the page was never refused while the source was busy"
            time.sleep(0.1)
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=60)


def _assert_total(profile: dict[str, Any], event: str, total: int) -> None:
    assert profile["computed"]["event_counts"].get(event, {}).get("total") == total, profile["computed"]


# ------------------------------------------------------------------------------------------ RudderStack
def _rudder_page(platform: Platform, write_key: str, scenario: str, load_options: dict[str, Any] | None = None) -> str:
    """A page that self-hosts RudderStack's bundled browser build; the data plane and the config
    URL are this Midstage."""
    options = {"configUrl": platform.url, "polyfillIfRequired": False, **(load_options or {})}
    return f"""<!doctype html>
<html><head><title>Shop</title>
<script src="/vendor/rudderstack/index.js"></script>
<script>
  var rudder = new rudderanalytics.RudderAnalytics();
  rudder.load({js(write_key)}, {js(platform.url)}, {js(options)});
</script></head>
<body><h1>Shop</h1><script>{scenario}</script></body></html>"""


def _rudder_scenario(person_: dict[str, str]) -> str:
    return f"""
rudder.ready(function () {{
  rudder.page("Docs", "Pricing", {{ plan: "pro" }});
  rudder.track("Product Viewed", {{ sku: "A-1" }});
  rudder.identify({js(person_["user"])}, {{ email: {js(person_["email"])}, plan: "pro" }});
  rudder.group({js(person_["group"])}, {{ name: "Acme" }});
  rudder.alias({js(person_["user"])}, {js(person_["previous"])});
  rudder.track("Order Completed", {{ revenue: 42 }});
  window.__result = {{ anonymousId: rudder.getAnonymousId() }};
}});
"""


def test_rudderstack_js_builds_one_profile_with_only_the_host_changed(platform: Platform, site: Site, tab: Tab) -> None:
    person_ = person()
    tab.page.goto(site.publish("rudder", _rudder_page(platform, platform.write_key, _rudder_scenario(person_))))
    tab.page.wait_for_function("window.__result !== undefined", timeout=60_000)
    result = tab.page.evaluate("window.__result")

    one_profile(platform, person_, result["anonymousId"])
    config = [r for r in tab.traffic.requests if "/sourceConfig" in r["url"]]
    assert len(config) == 1 and "writeKey=" in config[0]["url"]
    # Anonymous calls carry "userId": "" and the AnonymousId header: both are accepted.
    assert tab.traffic.to("/v1/page") and tab.traffic.to("/v1/alias")
    assert all("anonymousid" in r["headers"] for r in tab.traffic.to("/v1/track") if r["method"] == "POST")
    assert_stayed_home(tab.traffic, site, platform)


def test_rudderstack_beacons_carry_the_write_key_in_the_query(platform: Platform, site: Site, tab: Tab) -> None:
    person_ = person()
    options = {"useBeacon": True, "beaconQueueOptions": {"flushQueueInterval": 500}}
    page = _rudder_page(platform, platform.write_key, _rudder_scenario(person_), options)
    since = datetime.now(UTC)

    tab.page.goto(site.publish("rudder-beacon", page))
    tab.page.wait_for_function("window.__result !== undefined", timeout=60_000)
    result = tab.page.evaluate("window.__result")

    one_profile(platform, person_, result["anonymousId"])
    # Playwright does not report beacons: read what reached the collect function.
    sent = [a for a in arrivals(platform, since) if a.method == "POST"]
    assert sent and {a.path for a in sent} == {"/beacon/v1/batch"}
    assert all(a.query.endswith(f"writeKey={platform.write_key}") and a.status == 200 for a in sent)
    assert {a.headers.get("content-type") for a in sent} == {"text/plain"}
    assert_stayed_home(tab.traffic, site, platform)


def test_rudderstack_retries_pass_the_preflight_with_their_headers(platform: Platform, site: Site, tab: Tab) -> None:
    limited = platform.admin("POST", "/v1/sources", {"name": "limited rudder", "rate_limit": 1}).body
    run = person()["user"]
    scenario = f"""
rudder.ready(function () {{ window.__ready = true; }});
window.send = function () {{
  rudder.identify({js(run)});
  [1, 2, 3, 4].forEach(function (n) {{ rudder.track("Limited", {{ n: n }}); }});
}};
"""
    options = {"queueOptions": {"minRetryDelay": 1000, "maxRetryDelay": 3000}}
    since = datetime.now(UTC)
    tab.page.goto(site.publish("rudder-limited", _rudder_page(platform, limited["write_key"], scenario, options)))
    tab.page.wait_for_function("window.__ready === true", timeout=60_000)

    refused = _crowd_until_the_page_is_refused(platform, tab, limited["write_key"], since, "send()")

    profile_when(platform, f"user_id:{run}", lambda p: _assert_total(p, "Limited", 4))
    assert refused.answer_headers["access-control-allow-origin"] == site.url
    retried = [a for a in arrivals(platform, since) if a.from_a_page and "rsa-retry-attempt" in a.headers]
    assert retried and all("rsa-retry-reason" in a.headers for a in retried)
    assert 200 in {a.status for a in retried}
    assert_stayed_home(tab.traffic, site, platform)


# ------------------------------------------------------------------------------------------ sendBeacon
def test_a_json_beacon_is_credentialed_and_still_accepted(platform: Platform, site: Site, tab: Tab) -> None:
    # A Blob typed application/json makes sendBeacon a credentialed CORS request with a
    # preflight: it passes only if the origin is echoed (never `*`) with credentials allowed.
    run = person()["user"]
    body = {"writeKey": platform.write_key, "batch": [{"type": "track", "userId": run, "event": "Beaconed"}]}
    scenario = f"""
window.__result = navigator.sendBeacon({js(platform.url + "/v1/batch")},
  new Blob([JSON.stringify({js(body)})], {{ type: "application/json" }}));
"""
    page = f"<!doctype html><title>Beacon</title><script>{scenario}</script>"
    since = datetime.now(UTC)

    tab.page.goto(site.publish("beacon", page))

    assert tab.page.evaluate("window.__result") is True
    profile_when(platform, f"user_id:{run}", lambda p: _assert_total(p, "Beaconed", 1))
    (preflight,) = [a for a in arrivals(platform, since) if a.method == "OPTIONS"]
    assert preflight.answer_headers["access-control-allow-origin"] == site.url
    assert preflight.answer_headers["access-control-allow-credentials"] == "true"
    assert_stayed_home(tab.traffic, site, platform)
