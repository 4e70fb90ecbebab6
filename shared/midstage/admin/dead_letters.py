"""/v1/dead-letters: what each dead-letter queue holds and why, and redriving it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank
from midstage.models.requests import MAX_LISTED, RedriveRequest

routes = Routes()


@routes.get("/", role=RoleRank.data_operator)
def list_dead_letter_queues() -> Response[Any]:
    return json_answer(200, routes.services.dead_letters.overview())


@routes.get("/<queue>", role=RoleRank.data_operator, personal=True)
def list_dead_letters(queue: str) -> Response[Any]:
    return json_answer(200, routes.services.dead_letters.messages(queue, routes.limit(10, MAX_LISTED)))


@routes.post("/<queue>/redrive", role=RoleRank.admin)
def redrive_dead_letters(queue: str) -> Response[Any]:
    request = routes.body(RedriveRequest, required=False)
    return json_answer(200, routes.services.dead_letters.redrive(queue, request.limit, request.messageIds))
