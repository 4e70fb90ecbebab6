"""/v1/settings: the stack's own settings (the secret that signs webhook callbacks) and the key
rings of its signing secrets (list, rotate, remove a retired key)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank, SecretRotation
from midstage.services.admin.settings import webhook_secret

routes = Routes()


@routes.get("/webhook-secret", role=RoleRank.admin)
def get_webhook_secret() -> Response[Any]:
    return json_answer(200, webhook_secret(routes.services.config, routes.services.clock()))


@routes.get("/secrets", role=RoleRank.admin)
def list_signing_secrets() -> Response[Any]:
    return json_answer(200, routes.services.secrets.list_secrets())


@routes.post("/secrets/<name>/rotate", role=RoleRank.admin)
def rotate_signing_secret(name: str) -> Response[Any]:
    request = routes.body(SecretRotation, required=False)
    return json_answer(200, routes.services.secrets.rotate(name, request))


@routes.delete("/secrets/<name>/keys/<key_id>", role=RoleRank.admin)
def remove_signing_key(name: str, key_id: str) -> Response[Any]:
    return json_answer(200, routes.services.secrets.remove_key(name, key_id))
