"""/v1/messages: sending one message through the API, and any message's ledger record."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank
from midstage.models.requests import SendMessage

routes = Routes()


@routes.post("/", role=RoleRank.marketer)
def send_message() -> Response[Any]:
    _, accepted = routes.services.messages.send_message(routes.body(SendMessage), routes.caller)
    return json_answer(202, accepted)


@routes.get("/<message_id>", role=RoleRank.viewer, personal=True)
def get_message(message_id: str) -> Response[Any]:
    return json_answer(200, routes.services.messages.get_message(message_id, routes.caller))
