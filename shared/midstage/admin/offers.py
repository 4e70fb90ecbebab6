"""/v1/offers: offers, their code pools, issuing a code to a person, and their figures."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage import http
from midstage.admin.routing import Routes, json_answer, no_content
from midstage.models.admin import RoleRank
from midstage.models.offers import IssueRequest, OfferCreate, OfferPatch

routes = Routes()
# An upload of 5,000 codes of 64 characters as JSON, with room to spare.
_UPLOAD_BYTES = 1024 * 1024


@routes.get("/", role=RoleRank.viewer)
def list_offers() -> Response[Any]:
    return json_answer(200, routes.services.offers.list())


@routes.post("/", role=RoleRank.marketer)
def create_offer() -> Response[Any]:
    return json_answer(201, routes.services.offers.create(routes.body(OfferCreate)))


@routes.get("/<offer_id>", role=RoleRank.viewer)
def get_offer(offer_id: str) -> Response[Any]:
    return json_answer(200, routes.services.offers.get(offer_id))


@routes.patch("/<offer_id>", role=RoleRank.marketer)
def patch_offer(offer_id: str) -> Response[Any]:
    return json_answer(200, routes.services.offers.patch(offer_id, routes.body(OfferPatch)))


@routes.delete("/<offer_id>", role=RoleRank.marketer)
def delete_offer(offer_id: str) -> Response[Any]:
    routes.services.offers.delete(offer_id)
    return no_content()


@routes.post("/<offer_id>/codes", role=RoleRank.marketer)
def upload_offer_codes(offer_id: str) -> Response[Any]:
    content_type = ((routes.request.headers or {}).get("content-type") or "application/json").lower()
    if "json" in content_type:
        body: Any = http.payload(routes.request, _UPLOAD_BYTES)
    else:
        body = http.body_text(routes.request, _UPLOAD_BYTES)
    return json_answer(200, routes.services.offers.upload(offer_id, body, content_type))


@routes.get("/<offer_id>/codes", role=RoleRank.viewer, personal=True)
def list_offer_codes(offer_id: str) -> Response[Any]:
    answer = routes.services.offers.codes(offer_id, routes.query("state"), routes.limit(), routes.cursor())
    return json_answer(200, answer)


@routes.post("/<offer_id>/issue", role=RoleRank.marketer)
def issue_offer(offer_id: str) -> Response[Any]:
    return json_answer(200, routes.services.offers.issue(offer_id, routes.body(IssueRequest)))


@routes.get("/<offer_id>/stats", role=RoleRank.viewer)
def get_offer_stats(offer_id: str) -> Response[Any]:
    return json_answer(200, routes.services.offers.stats(offer_id))
