"""/v1/imports: bulk imports of profiles, orders and offline conversions (services/bulk_import.py)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank
from midstage.models.bulk_imports import MAX_INLINE_BYTES, BulkImportRequest

routes = Routes()


@routes.post("/", role=RoleRank.data_operator)
def create_import() -> Response[Any]:
    # An inline file is base64 at worst: a third larger than the file, plus the request's fields.
    request = routes.body(BulkImportRequest, MAX_INLINE_BYTES * 4 // 3 + 64 * 1024)
    return json_answer(202, routes.services.bulk_imports.create(request))


@routes.get("/<import_id>", role=RoleRank.marketer)
def get_import(import_id: str) -> Response[Any]:
    return json_answer(200, routes.services.bulk_imports.progress(import_id))
