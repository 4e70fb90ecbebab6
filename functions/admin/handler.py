"""Admin API: sources and write keys, admin API keys, quarantine, profile lookup."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from midstage.adapters.config_store import ConfigStore, new_write_key
from midstage.adapters.profile_store import ProfileStore
from midstage.config import AdminSettings, identity_settings
from midstage.errors import Forbidden, InvalidInput, MidstageError, Unauthorized, describe
from midstage.http import answer, error_answer
from midstage.models.admin import ApiKeyCreate, RoleRank, Source, SourceCreate, SourceUpdate
from midstage.observability import logger
from midstage.services import profiles

app = APIGatewayHttpResolver()


@cache
def _stores() -> tuple[ConfigStore, ProfileStore]:
    settings = AdminSettings.from_env()
    return ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds), ProfileStore(
        settings.data_table
    )


def _caller(minimum: RoleRank) -> RoleRank:
    headers = app.current_event.headers or {}
    secret = headers.get("x-api-key")
    authorization = headers.get("authorization") or ""
    if not secret and authorization.lower().startswith("bearer "):
        secret = authorization[7:].strip()
    if not secret:
        raise Unauthorized("an API key is required (Authorization: Bearer <key> or x-api-key)")
    key = _stores()[0].api_key(secret)
    if key is None:
        raise Unauthorized("the API key is not valid")
    role = RoleRank[key.role]
    if role < minimum:
        raise Forbidden(f"this needs the {minimum.name} role; the key has {key.role}")
    logger.append_keys(api_key_id=key.id, role=key.role)
    return role


def _body(model: type[Any]) -> Any:
    try:
        payload = app.current_event.json_body
    except ValueError as error:
        raise InvalidInput("the body is not valid JSON", code="invalid_json") from error
    try:
        return model.model_validate(payload if payload is not None else {})
    except ValidationError as error:
        raise InvalidInput(describe(error, "body"), code="invalid_body") from error


def _limit(default: int = 50, maximum: int = 200) -> int:
    raw = app.current_event.get_query_string_value("limit", str(default)) or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise InvalidInput(f"'limit' must be an integer from 1 to {maximum}", code="invalid_limit")
    return int(raw)


def _json(status: int, body: Any) -> Response[Any]:
    shaped = answer(status, body)
    return Response(status_code=status, content_type="application/json", body=shaped["body"])


# ---------------------------------------------------------------------- sources
@app.get("/v1/sources")
def list_sources() -> Response[Any]:
    _caller(RoleRank.marketer)
    return _json(200, {"sources": [s.model_dump() for s in _stores()[0].list_sources()]})


@app.post("/v1/sources")
def create_source() -> Response[Any]:
    _caller(RoleRank.admin)
    request: SourceCreate = _body(SourceCreate)
    source = Source(
        name=request.name,
        write_key=new_write_key(),
        rate_limit=request.rate_limit,
        allowed_origins=[str(o).rstrip("/") for o in request.allowed_origins],
    )
    return _json(201, _stores()[0].create_source(source).model_dump())


@app.get("/v1/sources/<source_id>")
def get_source(source_id: str) -> Response[Any]:
    _caller(RoleRank.marketer)
    return _json(200, _stores()[0].get_source(source_id).model_dump())


@app.patch("/v1/sources/<source_id>")
def update_source(source_id: str) -> Response[Any]:
    _caller(RoleRank.admin)
    request: SourceUpdate = _body(SourceUpdate)
    store = _stores()[0]
    changes = request.model_dump(exclude_unset=True)
    if "allowed_origins" in changes and changes["allowed_origins"] is not None:
        changes["allowed_origins"] = [str(o).rstrip("/") for o in request.allowed_origins or []]
    current = store.get_source(source_id).model_dump()
    try:
        updated = Source.model_validate({**current, **changes})
    except ValidationError as error:
        raise InvalidInput(describe(error, "body"), code="invalid_body") from error
    return _json(200, store.save_source(updated).model_dump())


@app.delete("/v1/sources/<source_id>")
def delete_source(source_id: str) -> Response[Any]:
    _caller(RoleRank.admin)
    _stores()[0].delete_source(source_id)
    return Response(status_code=204, body="")


@app.post("/v1/sources/<source_id>/rotate-key")
def rotate_write_key(source_id: str) -> Response[Any]:
    _caller(RoleRank.admin)
    store = _stores()[0]
    return _json(200, store.rotate_write_key(store.get_source(source_id)).model_dump())


@app.get("/v1/sources/<source_id>/quarantine")
def list_quarantine(source_id: str) -> Response[Any]:
    _caller(RoleRank.data_operator)
    config, data = _stores()
    config.get_source(source_id)
    entries, cursor = data.quarantined(
        source_id, limit=_limit(), cursor=app.current_event.get_query_string_value("cursor")
    )
    return _json(200, {"entries": entries, "cursor": cursor})


# ---------------------------------------------------------------------- API keys
@app.get("/v1/api-keys")
def list_api_keys() -> Response[Any]:
    _caller(RoleRank.admin)
    keys = [k.model_dump(exclude={"digest"}) for k in _stores()[0].list_api_keys()]
    return _json(200, {"apiKeys": keys})


@app.post("/v1/api-keys")
def create_api_key() -> Response[Any]:
    _caller(RoleRank.admin)
    request: ApiKeyCreate = _body(ApiKeyCreate)
    key, secret = _stores()[0].create_api_key(request.name, request.role)
    return _json(201, {**key.model_dump(exclude={"digest"}), "secret": secret})


@app.delete("/v1/api-keys/<key_id>")
def revoke_api_key(key_id: str) -> Response[Any]:
    _caller(RoleRank.admin)
    return _json(200, _stores()[0].revoke_api_key(key_id).model_dump(exclude={"digest"}))


# ---------------------------------------------------------------------- profiles
@app.get("/v1/profiles/<profile_ref>")
def get_profile(profile_ref: str) -> Response[Any]:
    role = _caller(RoleRank.viewer)
    store = _stores()[1]
    profile = profiles.resolve(profile_ref, store, identity_settings())
    merges = store.merges([profile.id])[:20]
    return _json(200, profiles.present(profile, role, merges))


@app.get("/v1/profiles/<profile_ref>/timeline")
def get_profile_timeline(profile_ref: str) -> Response[Any]:
    role = _caller(RoleRank.viewer)
    limit = _limit()
    store = _stores()[1]
    profile = profiles.resolve(profile_ref, store, identity_settings())
    events, cursor = store.timeline(
        [profile.id, *profile.merged_from],
        limit=limit,
        before=app.current_event.get_query_string_value("cursor"),
    )
    if role < RoleRank.data_operator:
        events = [profiles.mask_event(e) for e in events]
    return _json(200, {"profileId": profile.id, "events": events, "cursor": cursor})


@app.get("/v1/profiles/<profile_ref>/merges")
def get_profile_merges(profile_ref: str) -> Response[Any]:
    role = _caller(RoleRank.viewer)
    store = _stores()[1]
    profile = profiles.resolve(profile_ref, store, identity_settings())
    records = store.merges([profile.id, *profile.merged_from])
    masked = [profiles.present_merge(r, role < RoleRank.data_operator) for r in records]
    return _json(200, {"profileId": profile.id, "merges": masked})


@app.exception_handler(MidstageError)
def _domain_error(error: MidstageError) -> Response[Any]:
    shaped = error_answer(error)
    return Response(
        status_code=error.status,
        content_type="application/json",
        body=shaped["body"],
        headers={k: v for k, v in shaped["headers"].items() if k != "content-type"},
    )


@app.not_found
def _not_found(_: Exception) -> Response[Any]:
    return _json(404, {"success": False, "code": "not_found", "message": "no such route"})


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
