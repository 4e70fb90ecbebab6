"""Admin API: sources and write keys, admin API keys, quarantine, profile lookup; rules,
templates, messages, consent, inbox and suppressions (logic in services.messaging_admin);
segments, campaigns and journeys (logic in services.automation_admin)."""

from __future__ import annotations

import base64
import binascii
import json
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from midstage.adapters.automation_store import CampaignRuns, Counters, JourneyInstances, RefreshJobs
from midstage.adapters.config_store import ConfigStore, new_write_key
from midstage.adapters.dead_letters import BusRedrive, DeadLetterQueue, FailureLog
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.messaging_store import FireRecords, InboxStore, MessageLedger, SuppressionStore
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue
from midstage.adapters.scheduler import CampaignSchedules
from midstage.clock import Clock, from_environment
from midstage.config import AdminSettings, computed_trait_settings, identity_settings
from midstage.errors import Forbidden, InvalidInput, MidstageError, PayloadTooLarge, Unauthorized, describe
from midstage.http import answer, error_answer
from midstage.logic.cors import admin_response_headers
from midstage.logic.text import problem
from midstage.models.admin import ApiKeyCreate, RoleRank, Source, SourceCreate, SourceUpdate, stamp
from midstage.models.campaigns import CAMPAIGN_STATUSES, CampaignBody
from midstage.models.journeys import JourneyBody
from midstage.models.messaging import RuleBody, TemplateBody
from midstage.models.segments import SegmentBody
from midstage.observability import correlate_http, logger, tracer
from midstage.services import profiles
from midstage.services.automation_admin import (
    AutomationAdmin,
    AutomationStores,
    CampaignCreate,
    EstimateRequest,
    ImportRequest,
    JourneyCreate,
    JourneyPatch,
    SegmentCreate,
)
from midstage.services.dead_letters import MAX_LISTED, DeadLetters, RedriveRequest, parse_specs
from midstage.services.messaging_admin import (
    Caller,
    ConsentUpdate,
    DryRunRequest,
    InboxRead,
    MessagingAdmin,
    PreviewRequest,
    RuleCreate,
    RulePatch,
    SendMessage,
    Stores,
    SuppressionPut,
    TemplateApproval,
    TemplateCreate,
    parse_body,
)

app = APIGatewayHttpResolver()

MAX_BODY_BYTES = 256 * 1024
# Segment imports carry a whole file: up to what Lambda accepts in one synchronous invocation.
MAX_IMPORT_BODY_BYTES = 6 * 1024 * 1024
MAX_JSON_DEPTH = 64
# Campaign schedules are named `<prefix>-campaign-<id>` inside the stack's own schedule group.
SCHEDULE_PREFIX = "midstage"


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _stores() -> Stores:
    settings = AdminSettings.from_env()
    return Stores(
        config=ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds),
        profiles=ProfileStore(settings.data_table),
        ledger=MessageLedger(settings.data_table),
        suppressions=SuppressionStore(settings.data_table),
        inbox=InboxStore(settings.data_table),
        fires=FireRecords(settings.data_table),
        delivery=MessageQueue(settings.delivery_queue_url),
        ingest=SqsHandoff(settings.ingest_queue_url),
    )


@cache
def _messaging() -> MessagingAdmin:
    return MessagingAdmin(
        _stores(),
        identity_settings(),
        max_window_days=max(computed_trait_settings().count_windows_days),
        clock=_clock(),
    )


@cache
def _automation() -> AutomationAdmin:
    settings = AdminSettings.from_env()
    stores = _stores()
    automation = AutomationStores(
        # Definitions are read uncached here: a save is checked against the others as they are now.
        config=ConfigStore(settings.config_table, cache_seconds=0),
        profiles=stores.profiles,
        refresh_jobs=RefreshJobs(settings.data_table),
        runs=CampaignRuns(settings.data_table),
        counters=Counters(settings.data_table),
        instances=JourneyInstances(settings.data_table),
        refresh_queue=MessageQueue(settings.refresh_queue_url),
        campaign_queue=MessageQueue(settings.campaign_queue_url),
        ingest=stores.ingest,
        schedules=CampaignSchedules(
            prefix=SCHEDULE_PREFIX,
            target_arn=settings.campaign_runner_arn,
            role_arn=settings.scheduler_role_arn,
            group=settings.schedule_group,
        ),
    )
    return AutomationAdmin(
        automation,
        identity_settings(),
        refresh_parts=settings.refresh_parts,
        max_window_days=max(computed_trait_settings().count_windows_days),
        clock=_clock(),
    )


@cache
def _dead_letters() -> DeadLetters:
    settings = AdminSettings.from_env()
    queues: dict[str, DeadLetterQueue] = {}

    def queue(url: str) -> DeadLetterQueue:
        return queues.setdefault(url, DeadLetterQueue(url))

    return DeadLetters(
        parse_specs(settings.dead_letter_queues),
        queue,
        FailureLog(settings.data_table),
        BusRedrive(settings.event_bus_name),
    )


def _caller(minimum: RoleRank) -> RoleRank:
    headers = app.current_event.headers or {}
    secret = headers.get("x-api-key")
    authorization = headers.get("authorization") or ""
    if not secret and authorization.lower().startswith("bearer "):
        secret = authorization[7:].strip()
    if not secret:
        raise Unauthorized("an API key is required (Authorization: Bearer <key> or x-api-key)")
    key = _stores().config.api_key(secret)
    if key is None:
        raise Unauthorized("the API key is not valid")
    role = RoleRank[key.role]
    if role < minimum:
        raise Forbidden(f"this needs the {minimum.name} role; the key has {key.role}")
    logger.append_keys(api_key_id=key.id, role=key.role)
    app.append_context(api_key_id=key.id)
    return role


def _who(role: RoleRank) -> Caller:
    """The caller that _caller() just admitted: its key id (recorded as author) and role."""
    return Caller(key_id=str(app.context.get("api_key_id", "")), role=role)


def _nesting(value: Any) -> int:
    """How deeply a parsed JSON value nests (iteratively: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _payload(limit: int = MAX_BODY_BYTES, *, required: bool = True) -> Any:
    """The JSON body; refused when missing (unless optional), too large, not UTF-8, not JSON,
    too deeply nested for the checks that walk it (the C parser itself stops at Python's
    recursion limit with RecursionError), or holding what cannot be stored (text with unpaired
    surrogates, numbers that are not finite)."""
    text = _body_text(limit)
    if not text.strip():
        if required:
            raise InvalidInput("this route needs a JSON body", code="empty_body")
        return None
    too_deep = InvalidInput(f"the body nests deeper than {MAX_JSON_DEPTH} levels", code="too_deeply_nested")
    try:
        payload = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except ValueError as error:
        raise InvalidInput("the body is not valid JSON", code="invalid_json") from error
    if _nesting(payload) > MAX_JSON_DEPTH:
        raise too_deep
    found = problem(payload)
    if found is not None:
        raise InvalidInput(found.message, code=found.code)
    return payload


def _body_text(limit: int) -> str:
    """The body as text. Read here rather than through `decoded_body`, which lets a body that
    is not UTF-8 escape as UnicodeDecodeError (a 500)."""
    event = app.current_event
    body = event.body or ""
    try:
        raw = base64.b64decode(body, validate=True) if event.is_base64_encoded else body.encode("utf-8")
    except (binascii.Error, ValueError) as error:
        raise InvalidInput("the body is not valid base64", code="invalid_encoding") from error
    except UnicodeEncodeError as error:
        raise InvalidInput("the body is not UTF-8 text", code="invalid_json") from error
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is over the limit of {limit} bytes", code="body_too_large")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput("the body is not UTF-8 text", code="invalid_json") from error


def _body(model: type[Any], limit: int = MAX_BODY_BYTES, *, required: bool = True) -> Any:
    """The body validated by `model`. An optional body that is absent means its defaults; a
    body that is there must be an object (`null` is not one)."""
    if not required and not _body_text(limit).strip():
        return parse_body(model, {})
    payload = _payload(limit)
    if not isinstance(payload, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_body")
    return parse_body(model, payload)


def _limit(default: int = 50, maximum: int = 200) -> int:
    raw = app.current_event.get_query_string_value("limit", str(default)) or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise InvalidInput(f"'limit' must be an integer from 1 to {maximum}", code="invalid_limit")
    return int(raw)


def _cursor() -> str | None:
    return app.current_event.get_query_string_value("cursor") or None


def _if_match() -> int | None:
    """The version an edit expects to replace (`If-Match: 3`, `"3"` or `W/"3"`), if given."""
    raw = (app.current_event.headers or {}).get("if-match")
    if raw is None:
        return None
    text = raw.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 9:
        raise InvalidInput("If-Match must be the version number being replaced, e.g. 3", code="invalid_if_match")
    return int(text)


def _json(status: int, body: Any) -> Response[Any]:
    shaped = answer(status, body)
    return Response(status_code=status, content_type="application/json", body=shaped["body"])


def _no_content() -> Response[Any]:
    return Response(status_code=204, body="")


# ---------------------------------------------------------------------- sources
@app.get("/v1/sources")
def list_sources() -> Response[Any]:
    _caller(RoleRank.marketer)
    return _json(200, {"sources": [s.model_dump() for s in _stores().config.list_sources()]})


@app.post("/v1/sources")
def create_source() -> Response[Any]:
    _caller(RoleRank.admin)
    request: SourceCreate = _body(SourceCreate)
    source = Source(
        name=request.name,
        write_key=new_write_key(),
        rate_limit=request.rate_limit,
        allowed_origins=[str(o).rstrip("/") for o in request.allowed_origins],
        created_at=stamp(_clock()()),
    )
    return _json(201, _stores().config.create_source(source).model_dump())


@app.get("/v1/sources/<source_id>")
def get_source(source_id: str) -> Response[Any]:
    _caller(RoleRank.marketer)
    return _json(200, _stores().config.get_source(source_id).model_dump())


@app.patch("/v1/sources/<source_id>")
def update_source(source_id: str) -> Response[Any]:
    _caller(RoleRank.admin)
    request: SourceUpdate = _body(SourceUpdate, required=False)
    store = _stores().config
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
    _stores().config.delete_source(source_id)
    return _no_content()


@app.post("/v1/sources/<source_id>/rotate-key")
def rotate_write_key(source_id: str) -> Response[Any]:
    _caller(RoleRank.admin)
    store = _stores().config
    return _json(200, store.rotate_write_key(store.get_source(source_id)).model_dump())


@app.get("/v1/sources/<source_id>/quarantine")
def list_quarantine(source_id: str) -> Response[Any]:
    _caller(RoleRank.data_operator)
    stores = _stores()
    stores.config.get_source(source_id)
    entries, cursor = stores.profiles.quarantined(
        source_id, limit=_limit(), cursor=app.current_event.get_query_string_value("cursor")
    )
    return _json(200, {"entries": entries, "cursor": cursor})


# ---------------------------------------------------------------------- API keys
@app.get("/v1/api-keys")
def list_api_keys() -> Response[Any]:
    _caller(RoleRank.admin)
    keys = [k.model_dump(exclude={"digest"}) for k in _stores().config.list_api_keys()]
    return _json(200, {"apiKeys": keys})


@app.post("/v1/api-keys")
def create_api_key() -> Response[Any]:
    _caller(RoleRank.admin)
    request: ApiKeyCreate = _body(ApiKeyCreate)
    key, secret = _stores().config.create_api_key(request.name, request.role, now=_clock()())
    return _json(201, {**key.model_dump(exclude={"digest"}), "secret": secret})


@app.delete("/v1/api-keys/<key_id>")
def revoke_api_key(key_id: str) -> Response[Any]:
    _caller(RoleRank.admin)
    return _json(200, _stores().config.revoke_api_key(key_id).model_dump(exclude={"digest"}))


# ---------------------------------------------------------------------- profiles
@app.get("/v1/profiles/<profile_ref>")
def get_profile(profile_ref: str) -> Response[Any]:
    role = _caller(RoleRank.viewer)
    store = _stores().profiles
    profile = profiles.resolve(profile_ref, store, identity_settings())
    merges = store.merges([profile.id])[:20]
    return _json(200, profiles.present(profile, role, merges))


@app.get("/v1/profiles/<profile_ref>/timeline")
def get_profile_timeline(profile_ref: str) -> Response[Any]:
    role = _caller(RoleRank.viewer)
    limit = _limit()
    store = _stores().profiles
    profile = profiles.resolve(profile_ref, store, identity_settings())
    events, cursor = store.timeline(
        [profile.id, *profile.merged_from],
        limit=limit,
        before=app.current_event.get_query_string_value("cursor"),
    )
    if role < RoleRank.data_operator:
        secrets = profiles.sensitive_values(profile)
        events = [profiles.mask_event(e, secrets) for e in events]
    return _json(200, {"profileId": profile.id, "events": events, "cursor": cursor})


@app.get("/v1/profiles/<profile_ref>/merges")
def get_profile_merges(profile_ref: str) -> Response[Any]:
    role = _caller(RoleRank.viewer)
    store = _stores().profiles
    profile = profiles.resolve(profile_ref, store, identity_settings())
    records = store.merges([profile.id, *profile.merged_from])
    masked = [profiles.present_merge(r, role < RoleRank.data_operator) for r in records]
    return _json(200, {"profileId": profile.id, "merges": masked})


# ---------------------------------------------------------------------- rules
@app.get("/v1/rules")
def list_rules() -> Response[Any]:
    _caller(RoleRank.viewer)
    raw = app.current_event.get_query_string_value("enabled")
    if raw not in (None, "true", "false"):
        raise InvalidInput("'enabled' must be true or false", code="invalid_query")
    return _json(200, _messaging().list_rules(None if raw is None else raw == "true"))


@app.post("/v1/rules")
def create_rule() -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(201, _messaging().create_rule(_body(RuleCreate), caller))


@app.post("/v1/rules/validate")
def validate_rule() -> Response[Any]:
    _caller(RoleRank.marketer)
    return _json(200, _messaging().validate_rule(_payload()))


@app.get("/v1/rules/<rule_id>")
def get_rule(rule_id: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _messaging().get_rule(rule_id))


@app.put("/v1/rules/<rule_id>")
def replace_rule(rule_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _messaging().replace_rule(rule_id, _body(RuleBody), _if_match(), caller))


@app.patch("/v1/rules/<rule_id>")
def patch_rule(rule_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _messaging().patch_rule(rule_id, _body(RulePatch), _if_match(), caller))


@app.delete("/v1/rules/<rule_id>")
def delete_rule(rule_id: str) -> Response[Any]:
    _caller(RoleRank.marketer)
    _messaging().delete_rule(rule_id)
    return _no_content()


@app.get("/v1/rules/<rule_id>/versions")
def list_rule_versions(rule_id: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _messaging().rule_versions(rule_id))


@app.post("/v1/rules/<rule_id>/dry-run")
def dry_run_rule(rule_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _messaging().dry_run(rule_id, _body(DryRunRequest), caller))


@app.get("/v1/rules/<rule_id>/messages")
def list_rule_messages(rule_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.viewer))
    return _json(200, _messaging().rule_messages(rule_id, _limit(), _cursor(), caller))


# ---------------------------------------------------------------------- templates
@app.get("/v1/templates")
def list_templates() -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _messaging().list_templates())


@app.post("/v1/templates")
def create_template() -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(201, _messaging().create_template(_body(TemplateCreate), caller))


@app.get("/v1/templates/<template_id>")
def get_template(template_id: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _messaging().get_template(template_id))


@app.put("/v1/templates/<template_id>")
def replace_template(template_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _messaging().replace_template(template_id, _body(TemplateBody), _if_match(), caller))


@app.get("/v1/templates/<template_id>/versions")
def list_template_versions(template_id: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _messaging().template_versions(template_id, _limit(), _cursor()))


@app.post("/v1/templates/<template_id>/approve")
def approve_template(template_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.data_operator))
    return _json(200, _messaging().approve_template(template_id, _body(TemplateApproval), caller))


@app.post("/v1/templates/<template_id>/preview")
def preview_template(template_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _messaging().preview_template(template_id, _body(PreviewRequest), caller))


# ---------------------------------------------------------------------- messages
@app.post("/v1/messages")
def send_message() -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    _, accepted = _messaging().send_message(_body(SendMessage), caller)
    return _json(202, accepted)


@app.get("/v1/messages/<message_id>")
def get_message(message_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.viewer))
    return _json(200, _messaging().get_message(message_id, caller))


@app.get("/v1/profiles/<profile_ref>/messages")
def list_profile_messages(profile_ref: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.viewer))
    return _json(200, _messaging().profile_messages(profile_ref, _limit(), _cursor(), caller))


# ---------------------------------------------------------------------- consent and inbox
@app.put("/v1/profiles/<profile_ref>/consent")
def put_profile_consent(profile_ref: str) -> Response[Any]:
    _caller(RoleRank.data_operator)
    return _json(202, _messaging().update_consent(profile_ref, _body(ConsentUpdate)))


@app.get("/v1/profiles/<profile_ref>/inbox")
def list_profile_inbox(profile_ref: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.viewer))
    return _json(200, _messaging().inbox(profile_ref, _limit(), _cursor(), caller))


@app.post("/v1/profiles/<profile_ref>/inbox/read")
def mark_inbox_read(profile_ref: str) -> Response[Any]:
    _caller(RoleRank.marketer)
    return _json(200, _messaging().mark_read(profile_ref, _body(InboxRead)))


# ---------------------------------------------------------------------- suppressions
@app.get("/v1/suppressions/<channel>/<address>")
def get_suppression(channel: str, address: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _messaging().get_suppression(channel, address))


@app.put("/v1/suppressions/<channel>/<address>")
def put_suppression(channel: str, address: str) -> Response[Any]:
    _caller(RoleRank.data_operator)
    return _json(200, _messaging().put_suppression(channel, address, _body(SuppressionPut)))


@app.delete("/v1/suppressions/<channel>/<address>")
def delete_suppression(channel: str, address: str) -> Response[Any]:
    _caller(RoleRank.data_operator)
    _messaging().delete_suppression(channel, address)
    return _no_content()


# ---------------------------------------------------------------------- settings
@app.get("/v1/settings/webhook-secret")
def get_webhook_secret() -> Response[Any]:
    _caller(RoleRank.admin)
    return _json(200, _messaging().webhook_secret())


# ---------------------------------------------------------------------- segments
@app.get("/v1/segments")
def list_segments() -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _automation().list_segments())


@app.post("/v1/segments")
def create_segment() -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(201, _automation().create_segment(_body(SegmentCreate), caller))


@app.post("/v1/segments/estimate")
def estimate_segment() -> Response[Any]:
    _caller(RoleRank.marketer)
    return _json(200, _automation().estimate(_body(EstimateRequest)))


@app.get("/v1/segments/<segment_id>")
def get_segment(segment_id: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _automation().get_segment(segment_id))


@app.put("/v1/segments/<segment_id>")
def replace_segment(segment_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _automation().replace_segment(segment_id, _body(SegmentBody), _if_match(), caller))


@app.delete("/v1/segments/<segment_id>")
def delete_segment(segment_id: str) -> Response[Any]:
    _caller(RoleRank.marketer)
    _automation().delete_segment(segment_id)
    return _no_content()


@app.post("/v1/segments/<segment_id>/refresh")
def refresh_segment(segment_id: str) -> Response[Any]:
    _caller(RoleRank.marketer)
    return _json(202, _automation().refresh_segment(segment_id))


@app.get("/v1/segments/<segment_id>/refresh/<job_id>")
def get_segment_refresh(segment_id: str, job_id: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _automation().refresh_progress(segment_id, job_id))


@app.post("/v1/segments/<segment_id>/import")
def import_segment(segment_id: str) -> Response[Any]:
    _caller(RoleRank.marketer)
    return _json(202, _automation().import_people(segment_id, _body(ImportRequest, MAX_IMPORT_BODY_BYTES)))


# ---------------------------------------------------------------------- campaigns
@app.get("/v1/campaigns")
def list_campaigns() -> Response[Any]:
    _caller(RoleRank.viewer)
    status = app.current_event.get_query_string_value("status")
    if status is not None and status not in CAMPAIGN_STATUSES:
        raise InvalidInput(f"'status' must be one of {', '.join(CAMPAIGN_STATUSES)}", code="invalid_query")
    return _json(200, _automation().list_campaigns(status))


@app.post("/v1/campaigns")
def create_campaign() -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(201, _automation().create_campaign(_body(CampaignCreate), caller))


@app.get("/v1/campaigns/<campaign_id>")
def get_campaign(campaign_id: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _automation().get_campaign(campaign_id))


@app.put("/v1/campaigns/<campaign_id>")
def replace_campaign(campaign_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _automation().replace_campaign(campaign_id, _body(CampaignBody), _if_match(), caller))


@app.delete("/v1/campaigns/<campaign_id>")
def delete_campaign(campaign_id: str) -> Response[Any]:
    _caller(RoleRank.marketer)
    _automation().delete_campaign(campaign_id)
    return _no_content()


@app.post("/v1/campaigns/<campaign_id>/schedule")
def schedule_campaign(campaign_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _automation().schedule_campaign(campaign_id, caller))


@app.post("/v1/campaigns/<campaign_id>/pause")
def pause_campaign(campaign_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _automation().pause_campaign(campaign_id, caller))


@app.post("/v1/campaigns/<campaign_id>/resume")
def resume_campaign(campaign_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _automation().resume_campaign(campaign_id, caller))


@app.post("/v1/campaigns/<campaign_id>/cancel")
def cancel_campaign(campaign_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _automation().cancel_campaign(campaign_id, caller))


@app.get("/v1/campaigns/<campaign_id>/stats")
def get_campaign_stats(campaign_id: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _automation().campaign_stats(campaign_id))


# ---------------------------------------------------------------------- journeys
@app.get("/v1/journeys")
def list_journeys() -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _automation().list_journeys())


@app.post("/v1/journeys")
def create_journey() -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(201, _automation().create_journey(_body(JourneyCreate), caller))


@app.post("/v1/journeys/validate")
def validate_journey() -> Response[Any]:
    _caller(RoleRank.marketer)
    return _json(200, _automation().validate_journey(_payload()))


@app.get("/v1/journeys/<journey_id>")
def get_journey(journey_id: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _automation().get_journey(journey_id))


@app.put("/v1/journeys/<journey_id>")
def replace_journey(journey_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _automation().replace_journey(journey_id, _body(JourneyBody), _if_match(), caller))


@app.patch("/v1/journeys/<journey_id>")
def patch_journey(journey_id: str) -> Response[Any]:
    caller = _who(_caller(RoleRank.marketer))
    return _json(200, _automation().patch_journey(journey_id, _body(JourneyPatch), _if_match(), caller))


@app.delete("/v1/journeys/<journey_id>")
def delete_journey(journey_id: str) -> Response[Any]:
    _caller(RoleRank.marketer)
    _automation().delete_journey(journey_id)
    return _no_content()


@app.get("/v1/journeys/<journey_id>/versions")
def list_journey_versions(journey_id: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _automation().journey_versions(journey_id, _limit(10, 20), _cursor()))


@app.get("/v1/journeys/<journey_id>/stats")
def get_journey_stats(journey_id: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _automation().journey_stats(journey_id))


@app.get("/v1/profiles/<profile_ref>/journeys")
def list_profile_journeys(profile_ref: str) -> Response[Any]:
    _caller(RoleRank.viewer)
    return _json(200, _automation().profile_journeys(profile_ref))


# ---------------------------------------------------------------------- dead letters
@app.get("/v1/dead-letters")
def list_dead_letter_queues() -> Response[Any]:
    _caller(RoleRank.data_operator)
    return _json(200, _dead_letters().overview())


@app.get("/v1/dead-letters/<queue>")
def list_dead_letters(queue: str) -> Response[Any]:
    _caller(RoleRank.data_operator)
    return _json(200, _dead_letters().messages(queue, _limit(10, MAX_LISTED)))


@app.post("/v1/dead-letters/<queue>/redrive")
def redrive_dead_letters(queue: str) -> Response[Any]:
    _caller(RoleRank.admin)
    request: RedriveRequest = _body(RedriveRequest, required=False)
    return _json(200, _dead_letters().redrive(queue, request.limit, request.messageIds))


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
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_http(event)
    response = app.resolve(event, context)
    # The API has no CORS configuration of its own (the tracking routes need per-source origins).
    origin = {k.lower(): v for k, v in (event.get("headers") or {}).items()}.get("origin")
    response["headers"] = {**(response.get("headers") or {}), **admin_response_headers(origin)}
    return response
