"""/v1/settings/channels: each delivery channel's sending state (paused by an account-level
provider error, or sending)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank
from midstage.services.admin.channels import channel_states

routes = Routes()


@routes.get("/", role=RoleRank.viewer)
def list_channel_states() -> Response[Any]:
    return json_answer(200, channel_states(routes.services.channel_pauses))
