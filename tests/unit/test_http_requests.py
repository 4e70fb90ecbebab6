"""midstage.http's request helpers read a request, not a router: given API Gateway's own event
class over a payload-2.0 event, they parse bodies, pages and If-Match as the admin routes need."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from midstage import http
from midstage.errors import InvalidInput, IssuesError, PayloadTooLarge
from midstage.models.requests import JourneyPatch, RedriveRequest


def request(
    body: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    b64: bool = False,
) -> APIGatewayProxyEventV2:
    event: dict[str, Any] = {
        "version": "2.0",
        "rawPath": "/v1/rules",
        "headers": headers or {},
        "queryStringParameters": query,
        "body": base64.b64encode(body.encode()).decode() if b64 and body is not None else body,
        "isBase64Encoded": b64,
        "requestContext": {"http": {"method": "POST", "path": "/v1/rules"}},
    }
    return APIGatewayProxyEventV2(event)


@pytest.mark.parametrize(("sent", "version"), [("3", 3), ('"3"', 3), ('W/"3"', 3), (None, None)])
def test_if_match_reads_the_version_in_each_form_a_client_sends(sent: str | None, version: int | None) -> None:
    # Given an edit with (or without) If-Match, when it is read, then it is the version number
    assert http.if_match(request(headers={"if-match": sent} if sent is not None else {})) == version


@pytest.mark.parametrize("sent", ["three", "-1", "1234567890", 'W/""', "²"])
def test_if_match_that_is_not_a_version_number_is_refused(sent: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        http.if_match(request(headers={"if-match": sent}))
    assert refused.value.code == "invalid_if_match"


def test_page_limit_defaults_and_is_bounded() -> None:
    # Given no limit, then the default; given one in range, then it; given one past the maximum, then a 400
    assert http.page_limit(request()) == http.DEFAULT_LIMIT
    assert http.page_limit(request(query={"limit": "7"})) == 7
    assert http.page_limit(request(query={"limit": "20"}), 10, 20) == 20
    for sent in ("0", "21", "x", "-3", "²", "١٢"):  # digits Python calls digits but int() refuses
        with pytest.raises(InvalidInput) as refused:
            http.page_limit(request(query={"limit": sent}), 10, 20)
        assert refused.value.code == "invalid_limit"
    assert http.cursor(request(query={"cursor": ""})) is None
    assert http.cursor(request(query={"cursor": "abc"})) == "abc"


def test_a_body_nested_past_the_limit_is_refused_before_anything_walks_it() -> None:
    # Given a body nested one level deeper than allowed
    deep = "[" * (http.MAX_JSON_DEPTH + 1) + "]" * (http.MAX_JSON_DEPTH + 1)
    # When it is read, then it is refused as too deeply nested, while one level less is accepted
    with pytest.raises(InvalidInput) as refused:
        http.payload(request(deep))
    assert refused.value.code == "too_deeply_nested"
    assert http.nesting(http.payload(request(deep[1:-1]))) == http.MAX_JSON_DEPTH


def test_bodies_are_read_as_sent_or_refused_with_their_code() -> None:
    assert http.body(request(json.dumps({"enabled": True}), b64=True), JourneyPatch).enabled is True
    cases = [
        (request(None), InvalidInput, "empty_body"),
        (request("{"), InvalidInput, "invalid_json"),
        (request("[1]"), InvalidInput, "invalid_body"),
        (request('{"enabled": "yes"}'), IssuesError, "invalid_body"),
        (request("x" * 11), PayloadTooLarge, "body_too_large"),
    ]
    for sent, error, code in cases:
        with pytest.raises(error) as refused:
            http.body(sent, JourneyPatch, 10 if code == "body_too_large" else http.MAX_BODY_BYTES)
        assert refused.value.code == code
    # An optional body that is absent means the model's defaults
    assert http.body(request(None), RedriveRequest, required=False) == RedriveRequest()
