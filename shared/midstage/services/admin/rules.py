"""Rules: definitions saved as versions, checked by compiling them, tried against a person
and an event (dry run), and the messages each one queued."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from midstage.clock import Clock
from midstage.config import IdentitySettings
from midstage.errors import MAX_ISSUES, Conflict, InvalidInput, IssuesError, NotFound, summary, validation_issues
from midstage.logic.conditions import ConditionError
from midstage.logic.rules import CompiledRule, compile_rule, describe_issues, dry_run, inherited_record
from midstage.logic.timefmt import iso
from midstage.models.admin import Caller
from midstage.models.messaging import IssueOfferAction, Rule, RuleBody
from midstage.models.profile import Profile
from midstage.models.requests import DryRunRequest, RuleCreate, RulePatch
from midstage.models.segments import SEGMENT_ID
from midstage.services import profiles
from midstage.services.admin.common import OfferExists, trial_event, unknown_offers
from midstage.services.admin.messages import present_message
from midstage.services.admin.ports import FireHistory, MessageHistory, ProfileReader, Rules
from midstage.services.profiles import redact, sensitive_values

_ORIGIN_CURSOR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{1,20}Z#msg_[0-9a-f]{24}")
# An origin's message references are sorted by `<ISO timestamp>#<messageId>`; DynamoDB refuses an
# empty begins_with prefix, so the listing names the millennium all of them share.
ORIGIN_REF_PREFIX = "2"


class RuleAdmin:
    def __init__(
        self,
        config: Rules,
        profiles: ProfileReader,
        fires: FireHistory,
        ledger: MessageHistory,
        identity: IdentitySettings,
        *,
        max_window_days: int = 90,
        clock: Clock,
        offer_exists: OfferExists | None = None,
    ) -> None:
        self.config = config
        self.profiles = profiles
        self.fires = fires
        self.ledger = ledger
        self.identity = identity
        self.max_window_days = max_window_days
        self.clock = clock
        self.offer_exists = offer_exists

    def profile(self, ref: str) -> Profile:
        return profiles.resolve(ref, self.profiles, self.identity)

    def _compile(self, rule: Rule) -> CompiledRule:
        try:
            return compile_rule(rule, max_window_days=self.max_window_days)
        except ConditionError as error:
            issues = describe_issues(error.issues)
            raise IssuesError(summary("invalid rule", issues), issues, code="invalid_rule") from error

    def _offer_issues(self, rule: RuleBody) -> list[dict[str, str]]:
        """The issue_offer actions naming an offer that does not exist."""
        named = [
            (a.offer, f"/actions/{i}/offer") for i, a in enumerate(rule.actions) if isinstance(a, IssueOfferAction)
        ]
        return [issue.to_dict() for issue in unknown_offers(named, self.offer_exists)]

    def _check(self, rule: Rule) -> CompiledRule:
        compiled = self._compile(rule)
        issues = self._offer_issues(rule)
        if issues:
            raise IssuesError(summary("invalid rule", issues), issues, code="invalid_rule")
        return compiled

    def list_rules(self, enabled: bool | None) -> dict[str, Any]:
        rules = [r for r in self.config.rules() if enabled is None or r.enabled == enabled]
        rules.sort(key=lambda r: (-r.priority, r.id))
        return {"rules": [r.model_dump(mode="json") for r in rules]}

    def create_rule(self, body: RuleCreate, caller: Caller) -> dict[str, Any]:
        config = self.config
        if config.find_rule(body.id) is not None:
            raise Conflict(f"rule '{body.id}' exists; change it with PUT /v1/rules/{body.id}")
        if config.rule_versions(body.id):
            # A new rule under an old id would inherit the old one's fire records ("once" rules
            # would not fire for people the old rule reached) and mix the two histories.
            raise Conflict(f"rule id '{body.id}' belonged to a deleted rule and is not reused; pick another id")
        now = iso(self.clock())
        rule = Rule(**body.model_dump(), version=1, created_at=now, updated_at=now, updated_by=caller.key_id)
        self._check(rule)
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
        issues = self._offer_issues(rule)
        return {"valid": not issues, "issues": issues[:MAX_ISSUES]}

    def get_rule(self, rule_id: str) -> dict[str, Any]:
        return self.config.get_rule(rule_id).model_dump(mode="json")

    def _save_next(self, current: Rule, changes: Mapping[str, Any], if_match: int | None, caller: Caller) -> Rule:
        if if_match is not None and if_match != current.version:
            raise Conflict(
                f"rule '{current.id}' is at version {current.version}, not {if_match} (If-Match); reload and retry",
                code="version_mismatch",
            )
        document = {**current.model_dump(), **changes}
        document.update(version=current.version + 1, updated_at=iso(self.clock()), updated_by=caller.key_id)
        rule = Rule.model_validate(document)
        self._check(rule)
        return self.config.save_rule(rule)

    def replace_rule(self, rule_id: str, body: RuleBody, if_match: int | None, caller: Caller) -> dict[str, Any]:
        current = self.config.get_rule(rule_id)
        changes = {name: getattr(body, name) for name in RuleBody.model_fields}
        return self._save_next(current, changes, if_match, caller).model_dump(mode="json")

    def patch_rule(self, rule_id: str, body: RulePatch, if_match: int | None, caller: Caller) -> dict[str, Any]:
        current = self.config.get_rule(rule_id)
        changes = body.model_dump(exclude_none=True)
        return self._save_next(current, changes, if_match, caller).model_dump(mode="json")

    def delete_rule(self, rule_id: str) -> None:
        self.config.delete_rule(rule_id)

    def rule_versions(self, rule_id: str) -> dict[str, Any]:
        versions = sorted(self.config.rule_versions(rule_id), key=lambda r: -r.version)
        current = self.config.find_rule(rule_id)
        if not versions and current is None:
            raise NotFound(f"no rule '{rule_id}'")
        return {
            "ruleId": rule_id,
            "deleted": current is None,
            "versions": [r.model_dump(mode="json") for r in versions],
        }

    def dry_run(self, rule_id: str, body: DryRunRequest, caller: Caller) -> dict[str, Any]:
        config = self.config
        if body.rule is not None:
            if not re.fullmatch(SEGMENT_ID, rule_id):
                issue = {
                    "location": "/id",
                    "message": f"not a rule id (lower-case letters, digits, _ and -): {rule_id!r}",
                }
                raise IssuesError(summary("invalid rule", [issue]), [issue], code="invalid_rule")
            rule = Rule(**body.rule.model_dump(), id=rule_id, version=0)  # 0: not saved
        else:
            rule = config.get_rule(rule_id)
        compiled = self._compile(rule)
        profile = self.profile(body.profile) if body.profile else None
        now = self.clock()
        event = trial_event(body.event, profile, now) if body.event else None
        record = None
        if profile is not None:
            merged = self.fires.get_many(profile.merged_from, rule_id) if profile.merged_from else []
            record = inherited_record(self.fires.get(profile.id, rule_id), merged)
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

    def rule_messages(self, rule_id: str, limit: int, cursor: str | None, caller: Caller) -> dict[str, Any]:
        config = self.config
        if config.find_rule(rule_id) is None and not config.rule_versions(rule_id):
            raise NotFound(f"no rule '{rule_id}'")
        if cursor is not None and not _ORIGIN_CURSOR.fullmatch(cursor):
            raise InvalidInput("'cursor' is not one this listing returned", code="invalid_cursor")
        ids, next_cursor = self.ledger.list_origin("rule", rule_id, ORIGIN_REF_PREFIX, limit, cursor)
        records = [present_message(r, caller.masked, full=False) for r in self.ledger.many(ids)]
        return {"ruleId": rule_id, "messages": records, "cursor": next_cursor}
