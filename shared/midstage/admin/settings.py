"""/v1/settings: the stack's own settings (the secret that signs webhook callbacks)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank
from midstage.services.admin.settings import webhook_secret

routes = Routes()


@routes.get("/webhook-secret", role=RoleRank.admin)
def get_webhook_secret() -> Response[Any]:
    return json_answer(200, webhook_secret(routes.services.config))
