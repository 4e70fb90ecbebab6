"""/v1/regulations: privacy requests in Segment's Regulations shape (services/privacy.py)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.errors import InvalidInput
from midstage.models.admin import RoleRank
from midstage.models.requests import RegulationCreate

routes = Routes()

# 5,000 subjects of up to 512 characters each, as JSON strings, with room for escapes.
MAX_BODY_BYTES = 3 * 1024 * 1024


@routes.post("/", role=RoleRank.data_operator)
def create_regulation() -> Response[Any]:
    request = routes.body(RegulationCreate, MAX_BODY_BYTES)
    created, answer = routes.services.regulations.create(request, routes.caller.key_id)
    return json_answer(202 if created else 200, answer)


@routes.get("/", role=RoleRank.data_operator)
def list_regulations() -> Response[Any]:
    overdue = routes.query("overdue")
    if overdue not in (None, "true", "false"):
        raise InvalidInput("'overdue' is true or false", code="invalid_filter")
    shown = routes.services.regulations.list(
        routes.limit(), routes.cursor(), None if overdue is None else overdue == "true"
    )
    return json_answer(200, shown)


# Personal: a finished EXPORT's answer hands out its bundle's URLs (the read is audited).
@routes.get("/<regulate_id>", role=RoleRank.data_operator, personal=True)
def get_regulation(regulate_id: str) -> Response[Any]:
    return json_answer(200, routes.services.regulations.get(regulate_id))
