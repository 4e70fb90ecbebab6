"""Templates: versions, approval (one approved version at a time), previews for a person."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from midstage.clock import Clock
from midstage.config import IdentitySettings
from midstage.errors import Conflict, InvalidInput, IssuesError, NotFound, summary
from midstage.logic import templates
from midstage.logic.timefmt import iso
from midstage.models.admin import Caller
from midstage.models.messaging import Template, TemplateBody
from midstage.models.profile import Profile
from midstage.models.requests import PreviewRequest, TemplateApproval, TemplateCreate
from midstage.services import profiles
from midstage.services.admin.common import OfferExists, trial_event, unknown_offers
from midstage.services.admin.ports import ProfileReader, TemplateStore
from midstage.services.profiles import redact, sensitive_values

# What `links.unsubscribe` shows in previews: real links are signed per person and message.
PREVIEW_UNSUBSCRIBE_URL = "https://preview.invalid/u/unsubscribe"


class TemplateAdmin:
    def __init__(
        self,
        config: TemplateStore,
        profiles: ProfileReader,
        identity: IdentitySettings,
        *,
        clock: Clock,
        asset_url: Callable[[str], str | None] | None = None,
        offer_exists: OfferExists | None = None,
    ) -> None:
        self.config = config
        self.profiles = profiles
        self.identity = identity
        self.clock = clock
        # Where a published asset is served (None: not published); without a library, none is.
        self.asset_url = asset_url or (lambda name: None)
        self.offer_exists = offer_exists

    def profile(self, ref: str) -> Profile:
        return profiles.resolve(ref, self.profiles, self.identity)

    def _template_issues(self, body: TemplateBody) -> None:
        found = templates.check_template(body.channel, body.locales, body.variables, default_locale=body.default_locale)
        issues = [template_issue(i) for i in found]
        if not issues:
            named = [
                (offer_id, f"/locales/{locale}/{field}")
                for locale, content in body.locales.items()
                for field in content
                for offer_id in templates.offers_named(body.channel, {field: content[field]})
            ]
            issues = [issue.to_dict() for issue in unknown_offers(named, self.offer_exists)]
        if issues:
            raise IssuesError(summary("invalid template", issues), issues, code="invalid_template")

    def _assets(self, body: TemplateBody) -> dict[str, str]:
        """The URL of each asset the template names, which must be published."""
        resolved: dict[str, str] = {}
        issues = []
        for name in templates.assets_named(body.channel, body.locales):
            url = self.asset_url(name)
            if url is None:
                message = f"asset '{name}' is not a published asset (POST /v1/assets/{name}/publish publishes one)"
                issues.append({"location": _naming(body, name), "message": message})
            else:
                resolved[name] = url
        if issues:
            raise IssuesError(summary("invalid template", issues), issues, code="invalid_template")
        return resolved

    def list_templates(self) -> dict[str, Any]:
        summaries = []
        for entry in self.config.list_templates():
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
        entry = self.config.template_entry(template_id)
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
        if self.config.template_entry(body.id) is not None:
            raise Conflict(f"template '{body.id}' exists; PUT /v1/templates/{body.id} makes a new version")
        self._template_issues(body)
        template = Template(
            **body.model_dump(),
            version=1,
            status="draft",
            created_at=iso(self.clock()),
            updated_by=caller.key_id,
            assets=self._assets(body),
        )
        self.config.save_template(template, None)
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
            raise IssuesError(summary("invalid template", [issue]), [issue], code="invalid_template")
        self._template_issues(body)
        template = Template(
            **body.model_dump(),
            id=template_id,
            version=latest.version + 1,
            status="draft",
            created_at=iso(self.clock()),
            updated_by=caller.key_id,
            assets=self._assets(body),
        )
        self.config.save_template(template, approved)
        return self._present_entry(template, approved)

    def template_versions(self, template_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        latest, approved = self._entry(template_id)
        start = latest.version
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit()) or not 1 <= int(cursor) <= latest.version:
                raise InvalidInput("'cursor' is not one this listing returned", code="invalid_cursor")
            start = int(cursor)
        numbers = list(range(start, max(0, start - limit), -1))
        versions = [
            _present_template(latest if n == latest.version else self.config.get_template(template_id, n), approved)
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
        chosen = latest if body.version == latest.version else self.config.get_template(template_id, body.version)
        self._template_issues(chosen)  # the checks may have tightened since it was saved
        now = iso(self.clock())
        # Assets are resolved again: the approved version sends what is published now.
        update = {
            "status": "approved",
            "approved_at": now,
            "approved_by": caller.key_id,
            "assets": self._assets(chosen),
        }
        chosen = chosen.model_copy(update=update)
        self.config.approve_template(chosen)
        return self._present_entry(chosen if chosen.version == latest.version else latest, chosen)

    def preview_template(self, template_id: str, body: PreviewRequest, caller: Caller) -> dict[str, Any]:
        """The template rendered as it would be for this person and event; a variable with no
        value renders as nothing and is listed in `missing` instead of failing."""
        template = self.config.get_template(template_id, body.version)
        profile = self.profile(body.profile) if body.profile else None
        if profile is not None and caller.masked:
            # Masked before the template reads it: a filter (`reverse`, `join`, `replace`,
            # slices...) can only ever rearrange the masked value.
            profile = profiles.masked_view(profile)
        now = self.clock()
        event = trial_event(body.event, profile, now) if body.event else None
        context = templates.RenderContext(
            person=templates.person_context(profile) if profile else {},
            event=templates.event_context(event) if event else {},
            computed=dict(profile.computed) if profile else {},
            vars=body.vars,
            tz=profile.timezone if profile else None,
            unsubscribe_url=PREVIEW_UNSUBSCRIBE_URL,
            assets=template.assets,
        )
        rendered = templates.preview(
            template.channel,
            template.locales,
            template.variables,
            locale=body.locale or (profile.locale if profile else None),
            default_locale=template.default_locale,
            context=context,
            timer=time.monotonic,
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


def _present_template(template: Template, approved: Template | None) -> dict[str, Any]:
    shown = template.model_dump(mode="json")
    if approved is not None and approved.version == template.version:
        shown["status"] = "approved"
    elif shown["status"] == "approved":
        shown["status"] = "archived"  # approved once, since replaced by another approval
    return shown


def _naming(body: TemplateBody, asset: str) -> str:
    """The JSON pointer of the first field that names the asset."""
    for locale, content in body.locales.items():
        for field in content:
            if asset in templates.assets_named(body.channel, {locale: {field: content[field]}}):
                return f"/locales/{locale}/{field}"
    return "/locales"


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
