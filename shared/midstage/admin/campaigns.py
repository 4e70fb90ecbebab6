"""/v1/campaigns: campaign definitions, their state changes and stats."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer, no_content
from midstage.errors import InvalidInput
from midstage.models.admin import RoleRank
from midstage.models.campaigns import CAMPAIGN_STATUSES, CampaignBody
from midstage.models.requests import CampaignCreate

routes = Routes()


@routes.get("/", role=RoleRank.viewer)
def list_campaigns() -> Response[Any]:
    status = routes.query("status")
    if status is not None and status not in CAMPAIGN_STATUSES:
        raise InvalidInput(f"'status' must be one of {', '.join(CAMPAIGN_STATUSES)}", code="invalid_query")
    return json_answer(200, routes.services.campaigns.list_campaigns(status))


@routes.post("/", role=RoleRank.marketer)
def create_campaign() -> Response[Any]:
    return json_answer(201, routes.services.campaigns.create_campaign(routes.body(CampaignCreate), routes.caller))


@routes.get("/<campaign_id>", role=RoleRank.viewer)
def get_campaign(campaign_id: str) -> Response[Any]:
    return json_answer(200, routes.services.campaigns.get_campaign(campaign_id))


@routes.put("/<campaign_id>", role=RoleRank.marketer)
def replace_campaign(campaign_id: str) -> Response[Any]:
    campaigns = routes.services.campaigns
    body = routes.body(CampaignBody)
    return json_answer(200, campaigns.replace_campaign(campaign_id, body, routes.if_match(), routes.caller))


@routes.delete("/<campaign_id>", role=RoleRank.marketer)
def delete_campaign(campaign_id: str) -> Response[Any]:
    routes.services.campaigns.delete_campaign(campaign_id)
    return no_content()


@routes.post("/<campaign_id>/schedule", role=RoleRank.marketer)
def schedule_campaign(campaign_id: str) -> Response[Any]:
    return json_answer(200, routes.services.campaigns.schedule_campaign(campaign_id, routes.caller))


@routes.post("/<campaign_id>/pause", role=RoleRank.marketer)
def pause_campaign(campaign_id: str) -> Response[Any]:
    return json_answer(200, routes.services.campaigns.pause_campaign(campaign_id, routes.caller))


@routes.post("/<campaign_id>/resume", role=RoleRank.marketer)
def resume_campaign(campaign_id: str) -> Response[Any]:
    return json_answer(200, routes.services.campaigns.resume_campaign(campaign_id, routes.caller))


@routes.post("/<campaign_id>/cancel", role=RoleRank.marketer)
def cancel_campaign(campaign_id: str) -> Response[Any]:
    return json_answer(200, routes.services.campaigns.cancel_campaign(campaign_id, routes.caller))


@routes.get("/<campaign_id>/stats", role=RoleRank.viewer)
def get_campaign_stats(campaign_id: str) -> Response[Any]:
    return json_answer(200, routes.services.campaigns.campaign_stats(campaign_id))
