"""/v1/audit: the audit log's entries, newest first with filters, and the chain verified."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank
from midstage.services.admin.audit import parse_filter

routes = Routes()
FILTERS = ("since", "until", "actor", "action", "target", "kind")


@routes.get("/", role=RoleRank.admin)
def list_audit_entries() -> Response[Any]:
    wanted = parse_filter({name: routes.query(name) for name in FILTERS})
    return json_answer(200, routes.services.audit.entries(wanted, routes.limit(), routes.cursor()))


@routes.get("/verify", role=RoleRank.admin)
def verify_audit_chain() -> Response[Any]:
    return json_answer(200, routes.services.audit.verify())
