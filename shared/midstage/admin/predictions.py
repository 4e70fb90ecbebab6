"""/v1/predictions: the model cards behind the `predicted.*` traits (docs/predictions.md)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.errors import InvalidInput
from midstage.models.admin import RoleRank
from midstage.services.admin.predictions import model_card

routes = Routes()
MAX_VERSION = 1_000_000


def _version() -> int | None:
    raw = routes.query("version")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_VERSION:
        raise InvalidInput(f"'version' must be a whole number from 1 to {MAX_VERSION}", code="invalid_query")
    return int(raw)


@routes.get("/cards/<kind>", role=RoleRank.viewer)
def get_model_card(kind: str) -> Response[Any]:
    return json_answer(200, model_card(routes.services.model_cards, kind, _version()))
