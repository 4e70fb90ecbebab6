"""/v1/rules: rule definitions, their versions, dry runs and the messages each queued."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer, no_content
from midstage.errors import InvalidInput
from midstage.models.admin import RoleRank
from midstage.models.messaging import RuleBody
from midstage.models.requests import DryRunRequest, RuleCreate, RulePatch

routes = Routes()


@routes.get("/", role=RoleRank.viewer)
def list_rules() -> Response[Any]:
    raw = routes.query("enabled")
    if raw not in (None, "true", "false"):
        raise InvalidInput("'enabled' must be true or false", code="invalid_query")
    return json_answer(200, routes.services.rules.list_rules(None if raw is None else raw == "true"))


@routes.post("/", role=RoleRank.marketer)
def create_rule() -> Response[Any]:
    return json_answer(201, routes.services.rules.create_rule(routes.body(RuleCreate), routes.caller))


@routes.post("/validate", role=RoleRank.marketer)
def validate_rule() -> Response[Any]:
    return json_answer(200, routes.services.rules.validate_rule(routes.payload()))


@routes.get("/<rule_id>", role=RoleRank.viewer)
def get_rule(rule_id: str) -> Response[Any]:
    return json_answer(200, routes.services.rules.get_rule(rule_id))


@routes.put("/<rule_id>", role=RoleRank.marketer)
def replace_rule(rule_id: str) -> Response[Any]:
    rules = routes.services.rules
    return json_answer(200, rules.replace_rule(rule_id, routes.body(RuleBody), routes.if_match(), routes.caller))


@routes.patch("/<rule_id>", role=RoleRank.marketer)
def patch_rule(rule_id: str) -> Response[Any]:
    rules = routes.services.rules
    return json_answer(200, rules.patch_rule(rule_id, routes.body(RulePatch), routes.if_match(), routes.caller))


@routes.delete("/<rule_id>", role=RoleRank.marketer)
def delete_rule(rule_id: str) -> Response[Any]:
    routes.services.rules.delete_rule(rule_id)
    return no_content()


@routes.get("/<rule_id>/versions", role=RoleRank.viewer)
def list_rule_versions(rule_id: str) -> Response[Any]:
    return json_answer(200, routes.services.rules.rule_versions(rule_id))


@routes.post("/<rule_id>/dry-run", role=RoleRank.marketer)
def dry_run_rule(rule_id: str) -> Response[Any]:
    return json_answer(200, routes.services.rules.dry_run(rule_id, routes.body(DryRunRequest), routes.caller))


@routes.get("/<rule_id>/messages", role=RoleRank.viewer, personal=True)
def list_rule_messages(rule_id: str) -> Response[Any]:
    rules = routes.services.rules
    return json_answer(200, rules.rule_messages(rule_id, routes.limit(), routes.cursor(), routes.caller))
