"""/v1/spend: ad and channel spend imported into the analytics archive (the ROI report's cost)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank
from midstage.models.requests import SpendImport

# A spend file of MAX_SPEND_ROWS lines: up to what Lambda accepts in one synchronous invocation.
MAX_SPEND_BODY_BYTES = 6 * 1024 * 1024

routes = Routes()


@routes.post("/", role=RoleRank.marketer)
def import_spend() -> Response[Any]:
    request = routes.body(SpendImport, limit=MAX_SPEND_BODY_BYTES)
    return json_answer(202, routes.services.spend.import_spend(request))
