"""/v1/templates: message templates, their versions, approval and previews."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank
from midstage.models.messaging import TemplateBody
from midstage.models.requests import PreviewRequest, TemplateApproval, TemplateCreate

routes = Routes()


@routes.get("/", role=RoleRank.viewer)
def list_templates() -> Response[Any]:
    return json_answer(200, routes.services.templates.list_templates())


@routes.post("/", role=RoleRank.marketer)
def create_template() -> Response[Any]:
    return json_answer(201, routes.services.templates.create_template(routes.body(TemplateCreate), routes.caller))


@routes.get("/<template_id>", role=RoleRank.viewer)
def get_template(template_id: str) -> Response[Any]:
    return json_answer(200, routes.services.templates.get_template(template_id))


@routes.put("/<template_id>", role=RoleRank.marketer)
def replace_template(template_id: str) -> Response[Any]:
    templates = routes.services.templates
    body = routes.body(TemplateBody)
    return json_answer(200, templates.replace_template(template_id, body, routes.if_match(), routes.caller))


@routes.get("/<template_id>/versions", role=RoleRank.viewer)
def list_template_versions(template_id: str) -> Response[Any]:
    templates = routes.services.templates
    return json_answer(200, templates.template_versions(template_id, routes.limit(), routes.cursor()))


@routes.post("/<template_id>/approve", role=RoleRank.data_operator)
def approve_template(template_id: str) -> Response[Any]:
    templates = routes.services.templates
    return json_answer(200, templates.approve_template(template_id, routes.body(TemplateApproval), routes.caller))


@routes.post("/<template_id>/preview", role=RoleRank.marketer)
def preview_template(template_id: str) -> Response[Any]:
    templates = routes.services.templates
    return json_answer(200, templates.preview_template(template_id, routes.body(PreviewRequest), routes.caller))
