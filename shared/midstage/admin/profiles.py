"""/v1/profiles/{ref}: one person: profile, timeline, merges, messages, consent, inbox, journeys."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank
from midstage.models.requests import ConsentUpdate, InboxRead

routes = Routes()


@routes.get("/<profile_ref>", role=RoleRank.viewer, personal=True)
def get_profile(profile_ref: str) -> Response[Any]:
    return json_answer(200, routes.services.profile_lookup.lookup(profile_ref, routes.caller.role))


@routes.get("/<profile_ref>/timeline", role=RoleRank.viewer, personal=True)
def get_profile_timeline(profile_ref: str) -> Response[Any]:
    lookup = routes.services.profile_lookup
    return json_answer(200, lookup.timeline(profile_ref, routes.caller.role, routes.limit(), routes.query("cursor")))


@routes.get("/<profile_ref>/merges", role=RoleRank.viewer, personal=True)
def get_profile_merges(profile_ref: str) -> Response[Any]:
    return json_answer(200, routes.services.profile_lookup.merges(profile_ref, routes.caller.role))


@routes.get("/<profile_ref>/messages", role=RoleRank.viewer, personal=True)
def list_profile_messages(profile_ref: str) -> Response[Any]:
    messages = routes.services.messages
    return json_answer(200, messages.profile_messages(profile_ref, routes.limit(), routes.cursor(), routes.caller))


@routes.get("/<profile_ref>/consent", role=RoleRank.data_operator, personal=True)
def get_profile_consent(profile_ref: str) -> Response[Any]:
    return json_answer(200, routes.services.consent.consents(profile_ref))


@routes.put("/<profile_ref>/consent", role=RoleRank.data_operator, personal=True)
def put_profile_consent(profile_ref: str) -> Response[Any]:
    return json_answer(202, routes.services.consent.update_consent(profile_ref, routes.body(ConsentUpdate)))


@routes.get("/<profile_ref>/inbox", role=RoleRank.viewer, personal=True)
def list_profile_inbox(profile_ref: str) -> Response[Any]:
    return json_answer(200, routes.services.inbox.inbox(profile_ref, routes.limit(), routes.cursor(), routes.caller))


@routes.post("/<profile_ref>/inbox/read", role=RoleRank.marketer, personal=True)
def mark_inbox_read(profile_ref: str) -> Response[Any]:
    return json_answer(200, routes.services.inbox.mark_read(profile_ref, routes.body(InboxRead)))


@routes.get("/<profile_ref>/journeys", role=RoleRank.viewer, personal=True)
def list_profile_journeys(profile_ref: str) -> Response[Any]:
    return json_answer(200, routes.services.journeys.profile_journeys(profile_ref))
