"""The admin API's messaging routes: rules, templates, messages, consent, inbox, suppressions.

Pure orchestration over the stores it is given (no AWS client is made here): the handler
authenticates and parses, this module decides, the stores persist. Every refusal is a
MidstageError with a documented code; definitions that can be wrong in several places (rules,
templates, request bodies) are refused with every problem listed as `{location, message}`,
where `location` is a JSON pointer into what was sent.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import unquote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from midstage import keys
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.handoff import HandoffFailed, SqsHandoff
from midstage.adapters.messaging_store import FireRecords, InboxStore, MessageLedger, SuppressionStore
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue, QueueRefused
from midstage.clock import Clock
from midstage.config import IdentitySettings
from midstage.errors import Conflict, InvalidInput, NotFound, Unavailable, describe
from midstage.logic import internal_events, templates
from midstage.logic.conditions import ConditionError
from midstage.logic.identity import normalise_email, normalise_phone
from midstage.logic.profile import CONSENT_UPDATED, slim_event
from midstage.logic.rules import CompiledRule, compile_rule, describe_issues, dry_run
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.admin import RoleRank
from midstage.models.messaging import (
    Category,
    MessageRequest,
    Origin,
    Rule,
    RuleBody,
    Template,
    TemplateBody,
    message_id_for,
)
from midstage.models.profile import Profile
from midstage.services import profiles
from midstage.services.profiles import redact, sensitive_values

MAX_ISSUES = 50
INBOX_SWEEP_LIMIT = 1000  # entries one "mark all read" looks at, newest first
SUPPRESSIBLE_CHANNELS = ("email", "sms", "push")
_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_CURSOR = re.compile(r"[A-Za-z0-9#:._+@-]{1,400}")
_ORIGIN_CURSOR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{1,20}Z#msg_[0-9a-f]{24}")
M = TypeVar("M", bound=BaseModel)
# An origin's message references are sorted by `<ISO timestamp>#<messageId>`; DynamoDB refuses an
# empty begins_with prefix, so the listing names the millennium all of them share.
ORIGIN_REF_PREFIX = "2"
# What `links.unsubscribe` shows in previews: real links are signed per person and message.
PREVIEW_UNSUBSCRIBE_URL = "https://preview.invalid/u/unsubscribe"


# ------------------------------------------------------------------------------ errors
class IssuesError(InvalidInput):
    """A 400 whose body also lists every problem found, as `issues: [{location, message}]`."""

    def __init__(self, message: str, issues: Sequence[Mapping[str, str]], *, code: str) -> None:
        super().__init__(message, code=code)
        self.issues = [dict(i) for i in issues[:MAX_ISSUES]]

    def to_body(self) -> dict[str, object]:
        return {**super().to_body(), "issues": self.issues}


def _summary(subject: str, issues: Sequence[Mapping[str, str]]) -> str:
    first = issues[0] if issues else {"location": "", "message": "invalid"}
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{subject} at {first['location'] or '/'}: {first['message']}{more}"


def pointer(loc: Sequence[int | str], payload: Any, error_type: str = "") -> str:
    """A pydantic error location as a JSON pointer into the payload that was sent.

    pydantic adds steps that are not in the document (a union member's type, a tagged union's
    tag): only steps that exist in the payload are kept, and a missing field's own name last.
    """
    node = payload
    parts: list[str] = []
    for index, step in enumerate(loc):
        if isinstance(node, dict) and isinstance(step, str) and step in node:
            parts.append(step)
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            parts.append(str(step))
            node = node[step]
        elif index == len(loc) - 1 and error_type == "missing":
            parts.append(str(step))
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def validation_issues(error: ValidationError, payload: Any) -> list[dict[str, str]]:
    issues: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for entry in error.errors(include_url=False):
        message = str(entry["msg"]).removeprefix("Value error, ")
        location = pointer(entry["loc"], payload, str(entry["type"]))
        if (location, message) not in seen:
            seen.add((location, message))
            issues.append({"location": location, "message": message})
    return issues[:MAX_ISSUES]


def parse_body(model: type[M], payload: Any) -> M:
    """Validate a request body; a mismatch is `400 invalid_body` with every issue listed."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise IssuesError(describe(error, "body"), validation_issues(error, payload), code="invalid_body") from error


# ------------------------------------------------------------------------------ request bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleCreate(RuleBody):
    """A new rule: its definition and the id it will be known by (never reused once deleted)."""

    id: str = Field(pattern=_ID)


class RulePatch(_Body):
    enabled: StrictBool | None = None
    priority: StrictInt | None = Field(default=None, ge=-1000, le=1000)

    @model_validator(mode="after")
    def _something(self) -> RulePatch:
        if self.enabled is None and self.priority is None:
            raise ValueError("give `enabled` and/or `priority`")
        return self


class TrackEvent(_Body):
    """A Segment-style track event to test with."""

    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: str | None = Field(default=None, max_length=64, description="ISO 8601 with a zone; default now")
    messageId: str | None = Field(default=None, min_length=1, max_length=256)
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _zoned(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            moment = parse_iso(value)
        except ValueError as error:
            raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from error
        if moment.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-11-22T10:00:00Z")
        return iso(moment)


class DryRunRequest(_Body):
    profile: str | None = Field(default=None, min_length=1, max_length=1024, description="id or type:value")
    event: TrackEvent | None = None
    rule: RuleBody | None = Field(default=None, description="an unsaved definition to try instead")


class TemplateCreate(TemplateBody):
    id: str = Field(pattern=_ID)


class TemplateApproval(_Body):
    version: StrictInt = Field(ge=1)


class PreviewRequest(_Body):
    profile: str | None = Field(default=None, min_length=1, max_length=1024)
    event: TrackEvent | None = None
    version: int | None = Field(default=None, ge=1, description="default: the latest version")
    locale: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
    vars: dict[str, Any] = Field(default_factory=dict)


MessageChannel = Literal["email", "sms", "push", "inbox"]


class SendMessage(_Body):
    profile: str = Field(min_length=1, max_length=1024)
    channels: list[MessageChannel] = Field(min_length=1, max_length=4, description="in fallback order")
    template: str | dict[MessageChannel, str]
    category: Category
    vars: dict[str, Any] = Field(default_factory=dict)
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@+=-]+$")

    @field_validator("channels")
    @classmethod
    def _distinct(cls, channels: list[MessageChannel]) -> list[MessageChannel]:
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is listed twice")
        return channels

    @field_validator("template")
    @classmethod
    def _template_ids(cls, template: str | dict[MessageChannel, str]) -> str | dict[MessageChannel, str]:
        for template_id in [template] if isinstance(template, str) else template.values():
            if not re.match(_ID, template_id):
                raise ValueError(f"not a template id: {template_id!r}")
        return template

    @model_validator(mode="after")
    def _a_template_per_channel(self) -> SendMessage:
        if isinstance(self.template, dict) and set(self.channels) - set(self.template):
            raise ValueError(f"no template for {sorted(set(self.channels) - set(self.template))}")
        return self


class ConsentUpdate(_Body):
    channel: Literal["email", "sms", "push", "inbox", "*"]
    purpose: Literal["marketing", "transactional"]
    granted: StrictBool
    source: str = Field(default="admin-api", min_length=1, max_length=200, description="where consent was given")


class InboxRead(_Body):
    cursors: list[str] | None = Field(default=None, min_length=1, max_length=100)
    all: StrictBool | None = None

    @model_validator(mode="after")
    def _one_way(self) -> InboxRead:
        if (self.cursors is None) == (self.all is not True):
            raise ValueError('give either `cursors` or `"all": true`')
        return self


class SuppressionPut(_Body):
    reason: str = Field(default="manual", pattern=r"^[a-z][a-z_]{0,39}$")
    scope: Literal["all", "marketing"] = "all"
    detail: str = Field(default="", max_length=1000)


# ------------------------------------------------------------------------------ the service
@dataclass
class Caller:
    """Who is calling: the key's id is recorded as author or approver; the role decides masking."""

    key_id: str
    role: RoleRank

    @property
    def masked(self) -> bool:
        return self.role < RoleRank.data_operator


@dataclass
class Stores:
    config: ConfigStore
    profiles: ProfileStore
    ledger: MessageLedger
    suppressions: SuppressionStore
    inbox: InboxStore
    fires: FireRecords
    delivery: MessageQueue
    ingest: SqsHandoff


class MessagingAdmin:
    def __init__(
        self,
        stores: Stores,
        identity: IdentitySettings,
        *,
        max_window_days: int = 90,
        clock: Clock,
    ) -> None:
        self.stores = stores
        self.identity = identity
        self.max_window_days = max_window_days
        self.clock = clock

    # -------------------------------------------------------------- shared helpers
    def profile(self, ref: str) -> Profile:
        return profiles.resolve(ref, self.stores.profiles, self.identity)

    def _compile(self, rule: Rule) -> CompiledRule:
        try:
            return compile_rule(rule, max_window_days=self.max_window_days)
        except ConditionError as error:
            issues = describe_issues(error.issues)
            raise IssuesError(_summary("invalid rule", issues), issues, code="invalid_rule") from error

    # -------------------------------------------------------------- rules
    def list_rules(self, enabled: bool | None) -> dict[str, Any]:
        rules = [r for r in self.stores.config.rules() if enabled is None or r.enabled == enabled]
        rules.sort(key=lambda r: (-r.priority, r.id))
        return {"rules": [r.model_dump(mode="json") for r in rules]}

    def create_rule(self, body: RuleCreate, caller: Caller) -> dict[str, Any]:
        config = self.stores.config
        if config.find_rule(body.id) is not None:
            raise Conflict(f"rule '{body.id}' exists; change it with PUT /v1/rules/{body.id}")
        if config.rule_versions(body.id):
            # A new rule under an old id would inherit the old one's fire records ("once" rules
            # would not fire for people the old rule reached) and mix the two histories.
            raise Conflict(f"rule id '{body.id}' belonged to a deleted rule and is not reused; pick another id")
        now = iso(self.clock())
        rule = Rule(**body.model_dump(), version=1, created_at=now, updated_at=now, updated_by=caller.key_id)
        self._compile(rule)
        return config.save_rule(rule).model_dump(mode="json")

    def validate_rule(self, payload: Any) -> dict[str, Any]:
        model: type[RuleBody] = RuleCreate if isinstance(payload, dict) and "id" in payload else RuleBody
        try:
            body = model.model_validate(payload)
        except ValidationError as error:
            return {"valid": False, "issues": validation_issues(error, payload)}
        rule = Rule(**body.model_dump(exclude={"id"}), id=getattr(body, "id", "validate"))
        try:
            compile_rule(rule, max_window_days=self.max_window_days)
        except ConditionError as error:
            return {"valid": False, "issues": describe_issues(error.issues)[:MAX_ISSUES]}
        return {"valid": True, "issues": []}

    def get_rule(self, rule_id: str) -> dict[str, Any]:
        return self.stores.config.get_rule(rule_id).model_dump(mode="json")

    def _save_next(self, current: Rule, changes: Mapping[str, Any], if_match: int | None, caller: Caller) -> Rule:
        if if_match is not None and if_match != current.version:
            raise Conflict(
                f"rule '{current.id}' is at version {current.version}, not {if_match} (If-Match); reload and retry",
                code="version_mismatch",
            )
        document = {**current.model_dump(), **changes}
        document.update(version=current.version + 1, updated_at=iso(self.clock()), updated_by=caller.key_id)
        rule = Rule.model_validate(document)
        self._compile(rule)
        return self.stores.config.save_rule(rule)

    def replace_rule(self, rule_id: str, body: RuleBody, if_match: int | None, caller: Caller) -> dict[str, Any]:
        current = self.stores.config.get_rule(rule_id)
        changes = {name: getattr(body, name) for name in RuleBody.model_fields}
        return self._save_next(current, changes, if_match, caller).model_dump(mode="json")

    def patch_rule(self, rule_id: str, body: RulePatch, if_match: int | None, caller: Caller) -> dict[str, Any]:
        current = self.stores.config.get_rule(rule_id)
        changes = body.model_dump(exclude_none=True)
        return self._save_next(current, changes, if_match, caller).model_dump(mode="json")

    def delete_rule(self, rule_id: str) -> None:
        self.stores.config.delete_rule(rule_id)

    def rule_versions(self, rule_id: str) -> dict[str, Any]:
        versions = sorted(self.stores.config.rule_versions(rule_id), key=lambda r: -r.version)
        current = self.stores.config.find_rule(rule_id)
        if not versions and current is None:
            raise NotFound(f"no rule '{rule_id}'")
        return {
            "ruleId": rule_id,
            "deleted": current is None,
            "versions": [r.model_dump(mode="json") for r in versions],
        }

    def dry_run(self, rule_id: str, body: DryRunRequest, caller: Caller) -> dict[str, Any]:
        config = self.stores.config
        if body.rule is not None:
            if not re.fullmatch(_ID, rule_id):
                issue = {
                    "location": "/id",
                    "message": f"not a rule id (lower-case letters, digits, _ and -): {rule_id!r}",
                }
                raise IssuesError(_summary("invalid rule", [issue]), [issue], code="invalid_rule")
            rule = Rule(**body.rule.model_dump(), id=rule_id, version=0)  # 0: not saved
        else:
            rule = config.get_rule(rule_id)
        compiled = self._compile(rule)
        profile = self.profile(body.profile) if body.profile else None
        now = self.clock()
        event = self._event(body.event, profile, now) if body.event else None
        record = self.stores.fires.get(profile.id, rule_id) if profile else None
        result = dry_run(compiled, profile, event, now, record)
        result["saved"] = body.rule is None
        result["profileId"] = profile.id if profile else None
        result["event"] = event
        result["fireRecord"] = (
            {"lastFiredAt": record.last_fired_at, "lastOccurrence": record.last_occurrence, "count": record.count}
            if record
            else None
        )
        return redact(result, sensitive_values(profile)) if caller.masked and profile else result

    @staticmethod
    def _event(event: TrackEvent, profile: Profile | None, now: datetime) -> dict[str, Any]:
        person = internal_events.addressed_to(profile) if profile else None
        document: dict[str, Any] = {
            "type": "track",
            "event": event.event,
            "properties": event.properties,
            "context": event.context,
            "messageId": event.messageId or "dry-run-" + secrets.token_hex(8),
            "timestamp": event.timestamp or iso(now),
            "receivedAt": iso(now),
            **(person or {}),
        }
        return slim_event(document)

    def rule_messages(self, rule_id: str, limit: int, cursor: str | None, caller: Caller) -> dict[str, Any]:
        config = self.stores.config
        if config.find_rule(rule_id) is None and not config.rule_versions(rule_id):
            raise NotFound(f"no rule '{rule_id}'")
        if cursor is not None and not _ORIGIN_CURSOR.fullmatch(cursor):
            raise InvalidInput("'cursor' is not one this listing returned", code="invalid_cursor")
        ids, next_cursor = self.stores.ledger.list_for(
            keys.origin_pk("rule", rule_id), ORIGIN_REF_PREFIX, limit, cursor
        )
        records = [present_message(r, caller.masked, full=False) for r in self.stores.ledger.many(ids)]
        return {"ruleId": rule_id, "messages": records, "cursor": next_cursor}

    # -------------------------------------------------------------- templates
    def _template_issues(self, body: TemplateBody) -> None:
        found = templates.check_template(body.channel, body.locales, body.variables, default_locale=body.default_locale)
        issues = [template_issue(i) for i in found]
        if issues:
            raise IssuesError(_summary("invalid template", issues), issues, code="invalid_template")

    def list_templates(self) -> dict[str, Any]:
        summaries = []
        for entry in self.stores.config.list_templates():
            latest, approved = entry["latest"], entry.get("approved")
            summaries.append(
                {
                    "id": latest["id"],
                    "name": latest["name"],
                    "channel": latest["channel"],
                    "latestVersion": latest["version"],
                    "approvedVersion": approved["version"] if approved else None,
                    "updatedAt": latest.get("created_at", ""),
                    "updatedBy": latest.get("updated_by", ""),
                }
            )
        return {"templates": sorted(summaries, key=lambda s: s["id"])}

    def _entry(self, template_id: str) -> tuple[Template, Template | None]:
        entry = self.stores.config.template_entry(template_id)
        if entry is None:
            raise NotFound(f"no template '{template_id}'")
        approved = Template.model_validate(entry["approved"]) if entry.get("approved") else None
        return Template.model_validate(entry["latest"]), approved

    @staticmethod
    def _present_entry(latest: Template, approved: Template | None) -> dict[str, Any]:
        return {
            "id": latest.id,
            "latest": _present_template(latest, approved),
            "approved": _present_template(approved, approved) if approved else None,
        }

    def create_template(self, body: TemplateCreate, caller: Caller) -> dict[str, Any]:
        if self.stores.config.template_entry(body.id) is not None:
            raise Conflict(f"template '{body.id}' exists; PUT /v1/templates/{body.id} makes a new version")
        self._template_issues(body)
        template = Template(
            **body.model_dump(), version=1, status="draft", created_at=iso(self.clock()), updated_by=caller.key_id
        )
        self.stores.config.save_template(template, None)
        return self._present_entry(template, None)

    def get_template(self, template_id: str) -> dict[str, Any]:
        return self._present_entry(*self._entry(template_id))

    def replace_template(
        self, template_id: str, body: TemplateBody, if_match: int | None, caller: Caller
    ) -> dict[str, Any]:
        latest, approved = self._entry(template_id)
        if if_match is not None and if_match != latest.version:
            raise Conflict(
                f"template '{template_id}' is at version {latest.version}, not {if_match} (If-Match); reload and retry",
                code="version_mismatch",
            )
        if body.channel != latest.channel:
            issue = {
                "location": "/channel",
                "message": f"template '{template_id}' is for {latest.channel}; its channel cannot change "
                "(rules name it for that channel); create another template",
            }
            raise IssuesError(_summary("invalid template", [issue]), [issue], code="invalid_template")
        self._template_issues(body)
        template = Template(
            **body.model_dump(),
            id=template_id,
            version=latest.version + 1,
            status="draft",
            created_at=iso(self.clock()),
            updated_by=caller.key_id,
        )
        self.stores.config.save_template(template, approved)
        return self._present_entry(template, approved)

    def template_versions(self, template_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        latest, approved = self._entry(template_id)
        start = latest.version
        if cursor is not None:
            if not cursor.isdigit() or not 1 <= int(cursor) <= latest.version:
                raise InvalidInput("'cursor' is not one this listing returned", code="invalid_cursor")
            start = int(cursor)
        numbers = list(range(start, max(0, start - limit), -1))
        versions = [
            _present_template(
                latest if n == latest.version else self.stores.config.get_template(template_id, n), approved
            )
            for n in numbers
        ]
        last = numbers[-1] if numbers else 1
        return {"templateId": template_id, "versions": versions, "cursor": str(last - 1) if last > 1 else None}

    def approve_template(self, template_id: str, body: TemplateApproval, caller: Caller) -> dict[str, Any]:
        latest, approved = self._entry(template_id)
        if approved is not None and approved.version == body.version:
            return self._present_entry(latest, approved)  # already the approved one: nothing to do
        if body.version > latest.version:
            raise NotFound(f"template '{template_id}' has no version {body.version} (the latest is {latest.version})")
        chosen = (
            latest if body.version == latest.version else self.stores.config.get_template(template_id, body.version)
        )
        self._template_issues(chosen)  # the checks may have tightened since it was saved
        now = iso(self.clock())
        chosen = chosen.model_copy(update={"status": "approved", "approved_at": now, "approved_by": caller.key_id})
        self.stores.config.approve_template(chosen)
        return self._present_entry(chosen if chosen.version == latest.version else latest, chosen)

    def preview_template(self, template_id: str, body: PreviewRequest, caller: Caller) -> dict[str, Any]:
        """The template rendered as it would be for this person and event; a variable with no
        value renders as nothing and is listed in `missing` instead of failing."""
        template = self.stores.config.get_template(template_id, body.version)
        profile = self.profile(body.profile) if body.profile else None
        if profile is not None and caller.masked:
            # Masked before the template reads it: a filter (`reverse`, `join`, `replace`,
            # slices...) can only ever rearrange the masked value.
            profile = profiles.masked_view(profile)
        now = self.clock()
        event = self._event(body.event, profile, now) if body.event else None
        context = templates.RenderContext(
            person=templates.person_context(profile) if profile else {},
            event=templates.event_context(event) if event else {},
            computed=dict(profile.computed) if profile else {},
            vars=body.vars,
            tz=profile.timezone if profile else None,
            unsubscribe_url=PREVIEW_UNSUBSCRIBE_URL,
        )
        rendered = templates.preview(
            template.channel,
            template.locales,
            template.variables,
            locale=body.locale or (profile.locale if profile else None),
            default_locale=template.default_locale,
            context=context,
        )
        answer = {
            "templateId": template.id,
            "version": template.version,
            "channel": template.channel,
            "locale": rendered.locale,
            "fields": rendered.fields,
            "missing": rendered.missing,
            "profileId": profile.id if profile else None,
        }
        return redact(answer, sensitive_values(profile)) if caller.masked and profile else answer

    # -------------------------------------------------------------- messages
    def send_message(self, body: SendMessage, caller: Caller) -> tuple[bool, dict[str, Any]]:
        """Queue one API send. Returns (queued now, answer); the same idempotency key for the
        same person names the same message, which is sent at most once."""
        profile = self.profile(body.profile)
        for channel in body.channels:
            template_id = body.template if isinstance(body.template, str) else body.template[channel]
            self._check_sendable(template_id, channel)
        token = body.idempotencyKey or secrets.token_hex(16)
        key = f"api:{token}:{profile.id}"
        message_id = message_id_for(key)
        known = self.stores.ledger.get(message_id)
        answer = {"messageId": message_id, "profileId": profile.id, "idempotencyKey": body.idempotencyKey}
        if known is not None:
            return False, {**answer, "status": known.get("status", "queued"), "duplicate": True}
        request = MessageRequest(
            key=key,
            origin=Origin(kind="api", id=caller.key_id),
            profile_id=profile.id,
            channels=list(body.channels),
            category=body.category,
            template=body.template if isinstance(body.template, str) else dict(body.template),
            vars=body.vars,
            requested_at=iso(self.clock()),
        )
        try:
            self.stores.delivery.send([request])
        except QueueRefused as error:
            raise Unavailable(
                f"the message could not be queued; retry with the same idempotencyKey ({error})"
            ) from error
        return True, {**answer, "status": "queued", "duplicate": False}

    def _check_sendable(self, template_id: str, channel: str) -> None:
        entry = self.stores.config.template_entry(template_id)
        if entry is None:
            raise InvalidInput(f"no template '{template_id}'", code="unknown_template")
        approved = entry.get("approved")
        if not approved:
            raise InvalidInput(
                f"template '{template_id}' has no approved version; approve one first", code="template_not_approved"
            )
        if approved["channel"] != channel:
            raise InvalidInput(
                f"template '{template_id}' is for {approved['channel']}, not {channel}", code="invalid_body"
            )

    def get_message(self, message_id: str, caller: Caller) -> dict[str, Any]:
        record = self.stores.ledger.get(message_id) if re.fullmatch(r"msg_[0-9a-f]{24}", message_id) else None
        if record is None:
            raise NotFound(f"no message '{message_id[:100]}' (it may not have been processed yet)")
        shown = present_message(record, caller.masked, full=True)
        if caller.masked and record.get("profileId"):
            person = self.stores.profiles.profile(str(record["profileId"]))
            shown = redact(shown, sensitive_values(person))
        return shown

    def profile_messages(self, ref: str, limit: int, cursor: str | None, caller: Caller) -> dict[str, Any]:
        profile = self.profile(ref)
        _check_cursor(cursor, keys.MESSAGE_REF_PREFIX)
        ids, next_cursor = self.stores.ledger.list_for(
            keys.profile_pk(profile.id), keys.MESSAGE_REF_PREFIX, limit, cursor
        )
        records = [present_message(r, caller.masked, full=False) for r in self.stores.ledger.many(ids)]
        return {"profileId": profile.id, "messages": records, "cursor": next_cursor}

    # -------------------------------------------------------------- consent
    def update_consent(self, ref: str, body: ConsentUpdate) -> dict[str, Any]:
        profile = self.profile(ref)
        person = internal_events.addressed_to(profile)
        if person is None:
            raise Conflict(f"profile '{profile.id}' has no userId or anonymousId to address an event to")
        now = iso(self.clock())
        message_id = internal_events.internal_id("consent", profile.id, now, secrets.token_hex(8))
        properties = {"channel": body.channel, "purpose": body.purpose, "granted": body.granted, "source": body.source}
        event = internal_events.track(person, CONSENT_UPDATED, properties, message_id=message_id, timestamp=now)
        try:
            self.stores.ingest.send({internal_events.person_key(event): [event]})
        except HandoffFailed as error:
            raise Unavailable("the consent change could not be queued; retry") from error
        return {"profileId": profile.id, "messageId": message_id, "event": CONSENT_UPDATED, **properties}

    # -------------------------------------------------------------- inbox
    def inbox(self, ref: str, limit: int, cursor: str | None, caller: Caller) -> dict[str, Any]:
        profile = self.profile(ref)
        _check_cursor(cursor, keys.INBOX_PREFIX)
        entries, next_cursor = self.stores.inbox.list(profile.id, limit, cursor)
        answer = {"profileId": profile.id, "entries": entries, "cursor": next_cursor}
        return redact(answer, sensitive_values(profile)) if caller.masked else answer

    def mark_read(self, ref: str, body: InboxRead) -> dict[str, Any]:
        profile = self.profile(ref)
        now = self.clock()
        if body.cursors is not None:
            missing = [c for c in dict.fromkeys(body.cursors) if not self.stores.inbox.mark_read(profile.id, c, now)]
            return {"profileId": profile.id, "marked": len(set(body.cursors)) - len(missing), "notFound": missing}
        marked, seen, cursor = 0, 0, None
        while seen < INBOX_SWEEP_LIMIT:
            entries, cursor = self.stores.inbox.list(profile.id, 100, cursor)
            seen += len(entries)
            for entry in entries:
                if entry["readAt"] is None and self.stores.inbox.mark_read(profile.id, entry["cursor"], now):
                    marked += 1
            if cursor is None:
                break
        return {"profileId": profile.id, "marked": marked, "notFound": []}

    # -------------------------------------------------------------- suppressions
    def get_suppression(self, channel: str, address: str) -> dict[str, Any]:
        channel, address = suppression_address(channel, address)
        found = self.stores.suppressions.suppression(channel, address)
        if found is None:
            raise NotFound(f"{channel} address '{address[:200]}' is not suppressed")
        return present_suppression(found)

    def put_suppression(self, channel: str, address: str, body: SuppressionPut) -> dict[str, Any]:
        channel, address = suppression_address(channel, address)
        self.stores.suppressions.suppress(channel, address, body.reason, body.scope, self.clock(), body.detail)
        found = self.stores.suppressions.suppression(channel, address)
        if found is None:  # written a moment ago; an eventually consistent read may miss it
            return {"channel": channel, "address": address, "reason": body.reason, "scope": body.scope}
        return present_suppression(found)

    def delete_suppression(self, channel: str, address: str) -> None:
        channel, address = suppression_address(channel, address)
        if not self.stores.suppressions.lift(channel, address):
            raise NotFound(f"{channel} address '{address[:200]}' is not suppressed")

    # -------------------------------------------------------------- settings
    def webhook_secret(self) -> dict[str, Any]:
        return {"secret": self.stores.config.secret("webhooks").hex()}


# ------------------------------------------------------------------------------ presentation
def _present_template(template: Template, approved: Template | None) -> dict[str, Any]:
    shown = template.model_dump(mode="json")
    if approved is not None and approved.version == template.version:
        shown["status"] = "approved"
    elif shown["status"] == "approved":
        shown["status"] = "archived"  # approved once, since replaced by another approval
    return shown


def present_message(record: Mapping[str, Any], masked: bool, *, full: bool) -> dict[str, Any]:
    """A ledger record for the API: the stored request parsed (full) or left out (listings)."""
    hidden = {"pk", "sk", "expiresAt", "leaseUntil", "request"}
    shown = {k: v for k, v in record.items() if k not in hidden}
    if isinstance(shown.get("notBefore"), int):
        shown["notBefore"] = iso(datetime.fromtimestamp(shown["notBefore"], UTC))
    if full and isinstance(record.get("request"), str):
        try:
            shown["request"] = json.loads(record["request"])
        except ValueError:
            shown["request"] = None
    if masked and isinstance(shown.get("address"), str):
        address = shown["address"]
        shown["address"] = profiles.mask_email(address) if "@" in address else profiles.mask_phone(address)
    return shown


def present_suppression(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("channel", "address", "reason", "scope", "detail", "at") if k in record}


def suppression_address(channel: str, address: str) -> tuple[str, str]:
    """The channel checked and the address as the deliverer looks it up (emails lower-cased,
    phones in E.164); the address arrives URL-encoded in the path."""
    if channel not in SUPPRESSIBLE_CHANNELS:
        raise InvalidInput(
            f"channel must be one of {', '.join(SUPPRESSIBLE_CHANNELS)}, not '{channel[:40]}'", code="invalid_channel"
        )
    text = unquote(address).strip()
    if not text or len(text) > 512:
        raise InvalidInput("the address must have 1 to 512 characters", code="invalid_address")
    if channel == "email":
        normalised = normalise_email(text) if "@" in text else None
    elif channel == "sms":
        normalised = normalise_phone(text)
    else:
        normalised = text if re.fullmatch(r"[\x21-\x7e]+", text) else None
    if not normalised:
        raise InvalidInput(f"'{text[:200]}' is not a valid {channel} address", code="invalid_address")
    return channel, normalised


def template_issue(issue: templates.Issue) -> dict[str, Any]:
    """A template check's `locales.en.html:3` as `/locales/en/html` with `line: 3`."""
    where = issue.location.rsplit(":", 1)[0] if issue.line is not None else issue.location
    head, _, rest = where.partition(".")
    parts = [head, *rest.split(".", 1)] if head == "locales" and rest else [head, rest] if rest else [head]
    location = "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)
    shown: dict[str, Any] = {"location": location, "message": issue.message}
    if issue.line is not None:
        shown["line"] = issue.line
    return shown


def _check_cursor(cursor: str | None, prefix: str) -> None:
    if cursor is not None and not (cursor.startswith(prefix) and _CURSOR.fullmatch(cursor)):
        raise InvalidInput("'cursor' is not one this listing returned", code="invalid_cursor")
