"""How the two public HTTP functions route, called in-process on moto with payload-2.0 events as
API Gateway sends them: the tracking function (every tracking path, the SDK settings, and the
API's `$default` route with its preflights and 404s) and the engagement links.

What reaches a function is what API Gateway matched: the path is percent-decoded and a named
stage's prefix is not part of it, whether or not the request came through that prefix."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from midstage import cli
from midstage.adapters.config_store import ConfigStore
from midstage.clock import fixed
from midstage.logic import links
from midstage.logic.tracking_routes import CALLS
from midstage.models.admin import Source, stamp
from tests.integration.conftest import SAMPLES_SENT_AT, TEMPLATE, Context, Stack

ORIGIN = "https://shop.example.com"
KEY = "wk_local_demo"
BASIC = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()


def request(
    method: str,
    raw_path: str,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    stage: str = "$default",
    route_key: str = "$default",
    token: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com", **(headers or {})},
        "requestContext": {
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7"},
            "requestId": "req",
            "routeKey": route_key,
            "stage": stage,
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = body
    if token is not None:
        event["pathParameters"] = {"token": token}
    return event


def template_routes(function: str) -> list[tuple[str, str]]:
    """(method, path) of every HttpApi route template.yaml gives `function`, `$default` aside."""
    events = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))["Resources"][function]["Properties"]["Events"]
    routes = [(str(e["Properties"]["Method"]), str(e["Properties"]["Path"])) for e in events.values()]
    return [route for route in routes if route[1] != "$default"]


def parsed(answer: dict[str, Any]) -> Any:
    return json.loads(answer["body"])


@pytest.fixture
def config(stack: Stack) -> ConfigStore:
    store = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    store.create_source(Source(id="src_localdemo", name="demo", write_key=KEY, created_at=stamp(SAMPLES_SENT_AT)))
    return store


@pytest.fixture
def collect(stack: Stack, config: ConfigStore) -> ModuleType:
    return stack.load("CollectFunction")


@pytest.fixture
def engagement(stack: Stack, config: ConfigStore) -> ModuleType:
    return stack.load("EngagementFunction")


def track(collect: ModuleType, raw_path: str, **options: Any) -> dict[str, Any]:
    body = json.dumps({"userId": "ann", "event": "Viewed", "type": "track"})
    headers = {"authorization": BASIC, "content-type": "application/json", **options.pop("headers", {})}
    answer: dict[str, Any] = collect.lambda_handler(
        request("POST", raw_path, body=body, headers=headers, **options), Context()
    )
    return answer


# ------------------------------------------------------------------------------------ tracking
def test_every_tracking_path_reaches_the_intake_not_the_404(collect: ModuleType) -> None:
    for call in sorted(CALLS):
        # Given an empty object, each call refuses it with its own check (or takes it as an empty batch)
        answer = collect.lambda_handler(
            request("POST", f"/v1/{call}", body="{}", headers={"authorization": BASIC}), Context()
        )

        # Then the answer is the intake's, never the route table's 404
        assert answer["statusCode"] != 404, call
        assert parsed(answer).get("code") != "not_found", call


def test_every_route_the_template_gives_the_tracking_function_is_one_it_serves(collect: ModuleType) -> None:
    routes = template_routes("CollectFunction")
    assert len(routes) == 18  # the fifteen call paths, the beacon and the two settings paths

    for method, path in routes:
        raw_path = path.replace("{writeKey}", KEY)
        answer = collect.lambda_handler(
            request(method, raw_path, body="{}", headers={"authorization": BASIC}, query={"writeKey": KEY}), Context()
        )

        assert parsed(answer).get("code") != "not_found", (method, path)


def test_a_path_that_only_ends_like_a_route_is_not_one(collect: ModuleType) -> None:
    # Given a track path with a newline after it (a route rule's `$` would let it through)
    answer = track(collect, "/v1/track%0A")

    assert (answer["statusCode"], parsed(answer)["code"]) == (404, "not_found")


def test_a_track_call_is_accepted_on_its_long_and_short_paths(collect: ModuleType) -> None:
    for path in ("/v1/track", "/v1/t"):
        answer = track(collect, path)

        assert (answer["statusCode"], parsed(answer)["accepted"]) == (200, 1)


def test_a_named_stage_prefix_is_not_part_of_the_route_and_its_absence_is_fine(collect: ModuleType) -> None:
    # Given an API on stage "prod", reached through its prefix and through a custom domain without it
    prefixed = track(collect, "/prod/v1/track", stage="prod")
    mapped = track(collect, "/v1/track", stage="prod")

    # Then both are the track route
    assert (prefixed["statusCode"], parsed(prefixed)["accepted"]) == (200, 1)
    assert (mapped["statusCode"], parsed(mapped)["accepted"]) == (200, 1)


def test_a_percent_encoded_path_routes_as_api_gateway_decoded_it(collect: ModuleType) -> None:
    answer = track(collect, "/v1/%74rack")

    assert (answer["statusCode"], parsed(answer)["accepted"]) == (200, 1)


def test_a_rudderstack_beacon_carries_its_key_in_the_query(collect: ModuleType) -> None:
    body = json.dumps({"batch": [{"type": "track", "event": "Viewed", "anonymousId": "a1"}]})

    answer = collect.lambda_handler(
        request("POST", "/beacon/v1/batch", body=body, headers={"content-type": "text/plain"}, query={"writeKey": KEY}),
        Context(),
    )

    assert (answer["statusCode"], parsed(answer)["accepted"]) == (200, 1)


def test_the_query_key_is_read_only_on_the_beacon_path(collect: ModuleType) -> None:
    body = json.dumps({"batch": [{"type": "track", "event": "Viewed", "anonymousId": "a1"}]})

    answer = collect.lambda_handler(request("POST", "/v1/batch", body=body, query={"writeKey": KEY}), Context())

    assert answer["statusCode"] == 401


def test_segment_settings_are_read_for_the_key_in_the_path_even_percent_encoded(collect: ModuleType) -> None:
    plain = collect.lambda_handler(request("GET", f"/v1/projects/{KEY}/settings"), Context())
    encoded = collect.lambda_handler(request("GET", "/v1/projects/wk%5Flocal%5Fdemo/settings"), Context())

    for answer in (plain, encoded):
        assert answer["statusCode"] == 200
        assert parsed(answer)["integrations"]["Segment.io"]["apiKey"] == KEY


def test_rudderstack_source_config_answers_with_and_without_the_slash(collect: ModuleType) -> None:
    for path in ("/sourceConfig", "/sourceConfig/"):
        answer = collect.lambda_handler(request("GET", path, query={"writeKey": KEY}), Context())

        assert answer["statusCode"] == 200
        assert parsed(answer)["source"]["id"] == "src_localdemo"


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/track"), ("POST", "/sourceConfig/"), ("POST", "/v1/x")])
def test_an_unrouted_path_is_a_404_the_browser_can_read(collect: ModuleType, method: str, path: str) -> None:
    answer = collect.lambda_handler(request(method, path, body="{}", headers={"origin": ORIGIN}), Context())

    assert (answer["statusCode"], parsed(answer)["code"]) == (404, "not_found")
    assert answer["headers"]["access-control-allow-origin"] == ORIGIN
    assert answer["headers"]["vary"] == "Origin"


def test_a_tracking_preflight_echoes_the_origin_with_credentials(collect: ModuleType) -> None:
    headers = {"origin": ORIGIN, "access-control-request-method": "POST"}

    answer = collect.lambda_handler(request("OPTIONS", "/v1/t", headers=headers), Context())

    assert (answer["statusCode"], answer["body"]) == (204, "")
    assert answer["headers"]["access-control-allow-origin"] == ORIGIN
    assert answer["headers"]["access-control-allow-credentials"] == "true"
    assert answer["headers"]["access-control-max-age"] == "7200"


def test_an_admin_preflight_answers_any_origin_without_credentials(collect: ModuleType) -> None:
    headers = {"origin": "https://console.example", "access-control-request-method": "PATCH"}

    answer = collect.lambda_handler(
        request("OPTIONS", "/prod/v1/sources/src_1", headers=headers, stage="prod"), Context()
    )

    assert answer["statusCode"] == 204
    assert answer["headers"]["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer["headers"]
    assert "PATCH" in answer["headers"]["access-control-allow-methods"]


def test_an_options_request_that_is_not_a_preflight_is_a_404(collect: ModuleType) -> None:
    answer = collect.lambda_handler(request("OPTIONS", "/v1/t", headers={"origin": ORIGIN}), Context())

    assert (answer["statusCode"], parsed(answer)["code"]) == (404, "not_found")
    assert answer["headers"]["access-control-allow-origin"] == ORIGIN


def test_a_refusal_keeps_cors_headers_unless_the_origin_itself_is_refused(
    collect: ModuleType, config: ConfigStore
) -> None:
    config.save_source(config.get_source("src_localdemo").model_copy(update={"allowed_origins": [ORIGIN]}))

    bad = collect.lambda_handler(
        request("POST", "/v1/t", body="{", headers={"origin": ORIGIN, "authorization": BASIC}), Context()
    )
    foreign = track(collect, "/v1/t", headers={"origin": "https://evil.example"})

    assert (bad["statusCode"], parsed(bad)["code"]) == (400, "invalid_json")
    assert bad["headers"]["access-control-allow-origin"] == ORIGIN
    assert (foreign["statusCode"], parsed(foreign)["code"]) == (403, "origin_not_allowed")
    assert "access-control-allow-origin" not in foreign["headers"]


# ------------------------------------------------------------------------------------ engagement
def link(config: ConfigStore, payload: dict[str, str]) -> str:
    return links.sign(payload, config.secret("links"))


def visit(engagement: ModuleType, method: str, template: str, token: str, stage: str = "$default") -> dict[str, Any]:
    path = template.replace("{token}", token)
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    event = request(method, raw_path, route_key=f"{method} {template}", token=token, stage=stage)
    answer: dict[str, Any] = engagement.lambda_handler(event, Context())
    return answer


def test_the_open_pixel_is_a_gif_for_any_token(engagement: ModuleType, config: ConfigStore) -> None:
    for token in (link(config, links.open_payload("msg_1")), "not-a-token"):
        answer = visit(engagement, "GET", "/t/o/{token}", token)

        assert (answer["statusCode"], answer["headers"]["content-type"]) == (200, "image/gif")
        assert answer["isBase64Encoded"] is True
        assert base64.b64decode(answer["body"]).startswith(b"GIF89a")
        assert answer["headers"]["cache-control"] == "no-store"


def test_a_click_redirects_to_its_signed_url_and_an_altered_one_is_refused(
    engagement: ModuleType, config: ConfigStore
) -> None:
    token = link(config, links.click_payload("msg_1", "https://shop.example.com/new"))

    followed = visit(engagement, "GET", "/t/c/{token}", token)
    altered = visit(engagement, "GET", "/t/c/{token}", token[:-2] + "xx")
    oversized = visit(engagement, "GET", "/t/c/{token}", "a" * 5000)

    assert (followed["statusCode"], followed["headers"]["location"]) == (302, "https://shop.example.com/new")
    for refused in (altered, oversized):
        assert refused["statusCode"] == 400
        assert refused["headers"]["content-security-policy"].startswith("default-src 'none'")


def test_the_unsubscribe_page_posts_back_to_the_path_it_was_reached_on(
    engagement: ModuleType, config: ConfigStore
) -> None:
    token = link(config, links.unsubscribe_payload("msg_1", "prof_1", "ann@example.com", "email"))

    page = visit(engagement, "GET", "/u/{token}", token, stage="prod")
    done = visit(engagement, "POST", "/u/{token}", token)

    assert page["statusCode"] == 200
    assert f'action="/prod/u/{token}"' in page["body"]
    assert (done["statusCode"], "You are unsubscribed" in done["body"]) == (200, True)


def test_every_route_the_template_gives_the_engagement_function_is_one_it_serves(engagement: ModuleType) -> None:
    routes = template_routes("EngagementFunction")
    assert len(routes) == 4

    for method, template in routes:
        answer = visit(engagement, method, template, "not-a-token")

        assert answer["statusCode"] in (200, 400), (method, template)  # the pixel, or the page refusing the token


def test_a_path_that_is_not_a_link_is_a_plain_404(engagement: ModuleType) -> None:
    answer = engagement.lambda_handler(request("GET", "/t/x/abc", route_key="GET /t/x/{token}", token="abc"), Context())

    assert (answer["statusCode"], answer["body"]) == (404, "not found")
    assert answer["headers"]["content-type"] == "text/plain"


def test_a_link_whose_token_holds_an_encoded_line_break_is_refused_not_lost(engagement: ModuleType) -> None:
    # Given a token API Gateway bound from a path with an encoded line break (found by the fuzz tier)
    for method, template in template_routes("EngagementFunction"):
        raw_path = template.replace("{token}", "%0A%29")
        event = request(method, raw_path, route_key=f"{method} {template}", token="\n)")
        # When the link is followed
        answer = engagement.lambda_handler(event, Context())
        # Then it reaches its route, which answers as for any bad token: the pixel, or a refusal
        assert answer["statusCode"] in (200, 400), (method, template, answer["statusCode"])


# ------------------------------------------------------------------------------------ key rotation
ROTATED_AT = SAMPLES_SENT_AT + timedelta(days=1)


def test_after_the_links_secret_is_rotated_an_unsubscribe_link_already_sent_still_works(
    stack: Stack, config: ConfigStore
) -> None:
    # Given an unsubscribe link signed the way mail already sent was: the single `links` secret
    sent = links.sign(links.unsubscribe_payload("msg_1", "prof_1", "ann@example.com", "email"), config.secret("links"))
    engagement = stack.load("EngagementFunction", clock=fixed(ROTATED_AT + timedelta(days=30)))
    assert visit(engagement, "GET", "/u/{token}", sent)["statusCode"] == 200  # the container has read the ring

    # When the secret is rotated (the old key kept for the default 400 days)
    config.rotate_secret("links", ROTATED_AT, timedelta(days=400))
    fresh = links.sign(links.open_payload("msg_2"), config.key_ring("links").current)

    # Then the old link still unsubscribes, and a link of the new key works in the container that
    # read the ring before the rotation (it reads the ring again for a key id it does not know)
    done = visit(engagement, "POST", "/u/{token}", sent)
    assert (done["statusCode"], "You are unsubscribed" in done["body"]) == (200, True)
    assert fresh.endswith(".k1")
    click = links.sign(links.click_payload("msg_2", "https://shop.example.com/"), config.key_ring("links").current)
    assert visit(engagement, "GET", "/t/c/{token}", click)["statusCode"] == 302


def test_after_the_old_key_expires_or_is_removed_its_links_are_refused(stack: Stack, config: ConfigStore) -> None:
    sent = links.sign(links.unsubscribe_payload("msg_1", "prof_1", "ann@example.com", "email"), config.secret("links"))
    config.rotate_secret("links", ROTATED_AT, timedelta(days=10))

    within = stack.load("EngagementFunction", clock=fixed(ROTATED_AT + timedelta(days=9)))
    assert visit(within, "POST", "/u/{token}", sent)["statusCode"] == 200
    expired = stack.load("EngagementFunction", clock=fixed(ROTATED_AT + timedelta(days=10)))
    assert visit(expired, "POST", "/u/{token}", sent)["statusCode"] == 400

    config.remove_secret_key("links", "k0")
    removed = stack.load("EngagementFunction", clock=fixed(ROTATED_AT + timedelta(days=1)))
    assert visit(removed, "POST", "/u/{token}", sent)["statusCode"] == 400


def test_the_rotate_secret_command_rotates_and_prunes_the_ring(
    stack: Stack, config: ConfigStore, capsys: pytest.CaptureFixture[str]
) -> None:
    table = stack.output("ConfigTableName")
    sent = links.sign(links.unsubscribe_payload("msg_1", "prof_1", "ann@example.com", "email"), config.secret("links"))

    assert cli.main(["rotate-secret", "links", "--table", table, "--keep-days", "30"]) == 0
    rotated = json.loads(capsys.readouterr().out)
    refused = cli.main(["rotate-secret", "links", "--table", table, "--remove", "k1"])
    refusal = capsys.readouterr().err

    assert (rotated["currentKeyId"], [k["state"] for k in rotated["keys"]]) == ("k1", ["retired", "current"])
    later = stack.load("EngagementFunction", clock=fixed(datetime.now(UTC) + timedelta(days=29)))
    assert visit(later, "POST", "/u/{token}", sent)["statusCode"] == 200
    assert refused == 2
    assert "current key" in refusal
    assert cli.main(["rotate-secret", "links", "--table", table, "--remove", "k0"]) == 0
    assert [k["id"] for k in json.loads(capsys.readouterr().out)["keys"]] == ["k1"]
