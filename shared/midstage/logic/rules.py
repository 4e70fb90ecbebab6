"""The rules engine: which rules a domain event sets off, whether they match, what they do.

Rules are compiled once per container (conditions become plain closures) and indexed by what
triggers them, so a tracked event only looks at the rules that name it. Every effect gets an
id derived from (rule, trigger, person, action): a domain event handled twice yields the same
messages and events, which the ledger and the updater's dedupe then absorb.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from midstage.logic import internal_events
from midstage.logic.conditions import Condition, ConditionError, Facts, Issue, compile_condition
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.messaging import (
    EmitEventAction,
    IssueOfferAction,
    MessageRequest,
    Origin,
    Rule,
    SendAction,
    SetTraitAction,
    TagAction,
    WebhookAction,
)
from midstage.models.profile import Profile


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    where: Condition | None
    conditions: Condition | None
    valid_from: datetime | None
    valid_until: datetime | None

    @property
    def id(self) -> str:
        return self.rule.id


def compile_rule(rule: Rule, *, max_window_days: int = 90) -> CompiledRule:
    """Compile a rule's conditions; raise ConditionError with locations inside the rule."""
    issues: list[Issue] = []
    compiled: dict[str, Condition | None] = {"where": None, "conditions": None}
    for name, spec, prefix in (
        ("where", rule.trigger.where, "/trigger/where"),
        ("conditions", rule.conditions, "/conditions"),
    ):
        if spec is None:
            continue
        try:
            compiled[name] = compile_condition(spec, max_window_days=max_window_days)
        except ConditionError as error:
            issues.extend(Issue(prefix + i.location, i.message) for i in error.issues)
    window: dict[str, datetime | None] = {}
    for name in ("valid_from", "valid_until"):
        text = getattr(rule, name)
        try:
            window[name] = parse_iso(text) if text else None
        except ValueError:
            issues.append(Issue(f"/{name}", f"not an ISO 8601 timestamp: {text!r}"))
            window[name] = None
        if window[name] is not None and window[name].tzinfo is None:  # type: ignore[union-attr]
            issues.append(Issue(f"/{name}", "needs a time zone, e.g. 2026-12-01T00:00:00Z"))
    if window.get("valid_from") and window.get("valid_until") and window["valid_from"] >= window["valid_until"]:  # type: ignore[operator]
        issues.append(Issue("/valid_until", "must be after valid_from"))
    if issues:
        raise ConditionError(issues)
    return CompiledRule(rule, compiled["where"], compiled["conditions"], window["valid_from"], window["valid_until"])


@dataclass(frozen=True)
class Trigger:
    """One reason to look at rules: what happened, and an id naming that occurrence."""

    kind: str  # event | trait_changed | tag_added | tag_removed | segment_entered | segment_exited
    subject: str  # the event name, trait, tag or segment
    occurrence: str  # the event's messageId, or the profile version that changed


class RuleSet:
    """Enabled rules indexed by trigger, each list in the order rules run (priority, then id)."""

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self.rules = sorted((r for r in rules if r.rule.enabled), key=lambda r: (-r.rule.priority, r.id))
        self._index: dict[tuple[str, str], list[CompiledRule]] = {}
        for compiled in self.rules:
            trigger = compiled.rule.trigger
            subject = trigger.event or trigger.trait or trigger.tag or trigger.segment or ""
            self._index.setdefault((trigger.type, subject), []).append(compiled)

    def __len__(self) -> int:
        return len(self.rules)

    def matching(self, trigger: Trigger) -> list[CompiledRule]:
        named = self._index.get((trigger.kind, trigger.subject), [])
        if trigger.kind != "event":
            return named
        wildcard = self._index.get(("event", "*"), [])
        if not wildcard:
            return named
        return sorted(named + wildcard, key=lambda r: (-r.rule.priority, r.id))


def triggers_of(detail_type: str, detail: Mapping[str, Any]) -> list[Trigger]:
    """The triggers in one domain event from the bus."""
    if detail_type == "event.tracked":
        event = detail.get("event") or {}
        name = event.get("event") if event.get("type") == "track" else event.get("name")
        if not name:
            return []
        return [Trigger("event", str(name), str(event.get("messageId", "")))]
    if detail_type == "profile.updated":
        changes = detail.get("changes") or {}
        occurrence = f"v{detail.get('version')}"
        found = [Trigger("trait_changed", str(k), occurrence) for k in sorted(changes.get("traits") or {})]
        found += [Trigger("computed_changed", str(k), occurrence) for k in sorted(changes.get("computed") or {})]
        found += [Trigger("tag_added", str(t), occurrence) for t in changes.get("tags_added") or []]
        found += [Trigger("tag_removed", str(t), occurrence) for t in changes.get("tags_removed") or []]
        return found
    if detail_type in ("segment.entered", "segment.exited"):
        kind = "segment_entered" if detail_type == "segment.entered" else "segment_exited"
        return [Trigger(kind, str(detail.get("segmentId")), str(detail.get("occurrence") or detail.get("at")))]
    return []


@dataclass
class Verdict:
    rule: CompiledRule
    matched: bool
    reason: str  # why not, or "matched"
    held_out: bool = False


def judge(compiled: CompiledRule, facts: Facts, *, depth: int = 0, max_depth: int = 3) -> Verdict:
    """Whether a rule applies to this person now (refire policy aside: that needs the store)."""
    rule = compiled.rule
    if not rule.enabled:
        return Verdict(compiled, False, "the rule is disabled")
    if compiled.valid_from and facts.now < compiled.valid_from:
        return Verdict(compiled, False, f"the rule is valid from {rule.valid_from}")
    if compiled.valid_until and facts.now >= compiled.valid_until:
        return Verdict(compiled, False, f"the rule expired at {rule.valid_until}")
    if depth >= max_depth:
        return Verdict(compiled, False, f"set off by rules {depth} times in a row (the limit is {max_depth})")
    if compiled.where is not None and not compiled.where.test(facts):
        return Verdict(compiled, False, "the event does not match the trigger's `where`")
    if compiled.conditions is not None and not compiled.conditions.test(facts):
        return Verdict(compiled, False, "the person does not match the conditions")
    held_out = in_holdout(rule.id, facts.profile.id if facts.profile else "", rule.holdout_percent)
    return Verdict(compiled, True, "held out (control group)" if held_out else "matched", held_out)


def in_holdout(rule_id: str, profile_id: str, percent: float) -> bool:
    """A stable control group: the same person is always in or out of a rule's holdout."""
    if percent <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(f"{rule_id}:{profile_id}".encode()).digest()[:8], "big") % 10_000
    return bucket < percent * 100


@dataclass(frozen=True)
class FireRecord:
    """When a rule last fired for a person, and for which trigger (so a redelivery can finish)."""

    last_fired_at: str
    last_occurrence: str
    count: int


def inherited_record(own: FireRecord | None, merged_away: Sequence[FireRecord]) -> FireRecord | None:
    """The record a refire policy judges for a person: the latest firing among their own and those
    of the profiles merged into them (a `once` rule that fired for the anonymous visitor does not
    fire again for the customer the visitor turned out to be), with the counts added up."""
    records = [r for r in (own, *merged_away) if r is not None]
    if not records:
        return None
    latest = max(records, key=lambda r: (r.last_fired_at, r is own))
    return FireRecord(latest.last_fired_at, latest.last_occurrence, sum(r.count for r in records))


def refire_allows(rule: Rule, record: FireRecord | None, occurrence: str, now: datetime) -> tuple[bool, str]:
    if record is None or rule.refire.mode == "every" or record.last_occurrence == occurrence:
        return True, "allowed"
    if rule.refire.mode == "once":
        return False, f"already fired for this person at {record.last_fired_at} (refire: once)"
    assert rule.refire.days is not None
    due = parse_iso(record.last_fired_at) + timedelta(days=rule.refire.days)
    if now < due:
        return False, f"fired at {record.last_fired_at}; may fire again from {iso(due)}"
    return True, "allowed"


@dataclass(frozen=True)
class OfferClaim:
    """An `issue_offer` action to carry out: its cause is the action's key (the same for every
    delivery of one firing), and the code goes into the vars of the rule's sends after it."""

    offer: str
    cause: str
    var: str
    rule: str
    index: int


@dataclass
class Effects:
    messages: list[MessageRequest] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    offers: list[OfferClaim] = field(default_factory=list)


def plan_actions(
    rule: Rule,
    profile: Profile,
    event: Mapping[str, Any] | None,
    trigger: Trigger,
    now: datetime,
    *,
    depth: int | None = None,
) -> Effects:
    """What a matched rule does, as messages to deliver and events for the profile. `depth` is
    how many rule hops led to the trigger (read from the event when not given)."""
    effects = Effects()
    stamp = iso(now)
    person = internal_events.addressed_to(profile)
    depth = (internal_events.depth_of(event) if depth is None else depth) + 1
    origin = Origin(kind="rule", id=rule.id, version=rule.version)
    # "once" rules name the send by person alone, so not even a second trigger can repeat it.
    occurrence = "once" if rule.refire.mode == "once" else f"{trigger.kind}:{trigger.subject}:{trigger.occurrence}"
    for index, action in enumerate(rule.actions):
        key = f"rule:{rule.id}:{index}:{occurrence}:{profile.id}"
        step = f"action-{index}"
        if isinstance(action, IssueOfferAction):
            effects.offers.append(OfferClaim(action.offer, key, action.var, rule.id, index))
        elif isinstance(action, SendAction):
            effects.messages.append(
                MessageRequest(
                    key=key,
                    origin=origin.model_copy(update={"step": step}),
                    profile_id=profile.id,
                    channels=list(action.channels),
                    category=action.category,
                    template=action.template,
                    vars=action.vars,
                    event=dict(event) if event else None,
                    requested_at=stamp,
                    experiment=action.experiment,
                )
            )
        elif isinstance(action, WebhookAction):
            effects.messages.append(
                MessageRequest(
                    key=key,
                    origin=origin.model_copy(update={"step": step}),
                    profile_id=profile.id,
                    channels=["webhook"],
                    category="transactional",
                    event=dict(event) if event else None,
                    webhook_url=str(action.url),
                    webhook_include=list(action.include),
                    requested_at=stamp,
                )
            )
        elif person is not None:
            message_id = internal_events.internal_id(key)
            if isinstance(action, TagAction):
                name = "Tag Added" if action.type == "add_tag" else "Tag Removed"
                effects.events.append(
                    internal_events.track(
                        person,
                        name,
                        {"tag": action.tag, "rule": rule.id},
                        message_id=message_id,
                        timestamp=stamp,
                        depth=depth,
                    )
                )
            elif isinstance(action, SetTraitAction):
                effects.events.append(
                    internal_events.identify(
                        person, {action.trait: action.value}, message_id=message_id, timestamp=stamp, depth=depth
                    )
                )
            elif isinstance(action, EmitEventAction):
                properties = {**action.properties, "rule": rule.id}
                effects.events.append(
                    internal_events.track(
                        person, action.event, properties, message_id=message_id, timestamp=stamp, depth=depth
                    )
                )
    return effects


def with_offer_codes(
    messages: list[MessageRequest], claim: OfferClaim, code: str | None, reason: str | None
) -> list[MessageRequest]:
    """The messages with a claim's code (or its refusal, as `<var>_refused`) in the vars of its
    rule's sends that come after it."""
    given = {claim.var: code} if code is not None else {f"{claim.var}_refused": reason}
    changed = []
    for message in messages:
        step = message.origin.step or ""
        later = step.startswith("action-") and step[7:].isdigit() and int(step[7:]) > claim.index
        if message.origin.kind == "rule" and message.origin.id == claim.rule and later:
            message = message.model_copy(update={"vars": {**message.vars, **given}})
        changed.append(message)
    return changed


def dry_run(
    compiled: CompiledRule,
    profile: Profile | None,
    event: Mapping[str, Any] | None,
    now: datetime,
    record: FireRecord | None = None,
) -> dict[str, Any]:
    """Why a rule would or would not fire for this person and event, condition by condition."""
    facts = Facts(profile=profile, event=event, now=now)
    rule = compiled.rule
    trigger = triggers_of("event.tracked", {"event": event}) if event else []
    trigger_matches = bool(trigger and rule.trigger.type == "event" and rule.trigger.event in ("*", trigger[0].subject))
    verdict = judge(compiled, facts, depth=internal_events.depth_of(event))
    occurrence = trigger[0].occurrence if trigger else "dry-run"
    refire_ok, refire_reason = refire_allows(rule, record, occurrence, now)
    would_fire = verdict.matched and not verdict.held_out and refire_ok and (trigger_matches or not event)
    result: dict[str, Any] = {
        "ruleId": rule.id,
        "version": rule.version,
        "wouldFire": would_fire,
        "trigger": {
            "type": rule.trigger.type,
            "matched": trigger_matches if event else None,
            "reason": (
                "no event given"
                if not event
                else "the event matches the trigger"
                if trigger_matches
                else "the event does not match the trigger"
            ),
        },
        "where": compiled.where.explain(facts) if compiled.where is not None and event else None,
        "conditions": compiled.conditions.explain(facts) if compiled.conditions is not None else None,
        "verdict": verdict.reason,
        "heldOut": verdict.held_out,
        "refire": {"allowed": refire_ok, "reason": refire_reason},
    }
    if would_fire and profile is not None:
        fake = Trigger("event", trigger[0].subject if trigger else "dry-run", occurrence)
        effects = plan_actions(rule, profile, event, fake, now)
        result["actions"] = [m.model_dump(exclude_none=True) for m in effects.messages] + effects.events
    return result


def describe_issues(issues: Sequence[Issue]) -> list[dict[str, str]]:
    return [{"location": i.location, "message": i.message} for i in issues]
