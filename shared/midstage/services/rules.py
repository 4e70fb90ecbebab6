"""The rule evaluator's service: a domain event in, rule effects queued out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from midstage.logic import internal_events
from midstage.logic.conditions import Facts
from midstage.logic.rules import (
    CompiledRule,
    Effects,
    FireRecord,
    OfferClaim,
    RuleSet,
    compile_rule,
    inherited_record,
    judge,
    plan_actions,
    refire_allows,
    triggers_of,
    with_offer_codes,
)
from midstage.models.messaging import MessageRequest, Rule
from midstage.models.profile import Profile
from midstage.observability import logger
from midstage.services.compiled import CompiledCache
from midstage.services.offers import OfferIssuing
from midstage.services.ports import EventSink, MessageSink, Profiles


class RuleSource(Protocol):
    def rules(self) -> list[Rule]: ...


class Fires(Protocol):
    def get(self, profile_id: str, rule_id: str) -> FireRecord | None: ...
    def get_many(self, profile_ids: Sequence[str], rule_id: str) -> list[FireRecord]: ...
    def record(
        self, profile_id: str, rule_id: str, occurrence: str, now: datetime, expected: FireRecord | None
    ) -> bool: ...


@dataclass
class Summary:
    considered: int = 0
    matched: int = 0
    fired: list[str] = field(default_factory=list)
    held_out: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    messages: int = 0
    events: int = 0


class RuleEngine:
    def __init__(
        self,
        source: RuleSource,
        profiles: Profiles,
        fires: Fires,
        messages: MessageSink,
        events: EventSink,
        *,
        max_depth: int = 3,
        max_window_days: int = 90,
        offers: OfferIssuing | None = None,
    ) -> None:
        self.offers = offers
        self.source = source
        self.profiles = profiles
        self.fires = fires
        self.messages = messages
        self.events = events
        self.max_depth = max_depth
        self.max_window_days = max_window_days
        self._compiled: CompiledCache[Rule, CompiledRule, RuleSet] = CompiledCache(
            "rule", lambda rule: compile_rule(rule, max_window_days=self.max_window_days), RuleSet
        )

    def ruleset(self) -> RuleSet:
        """The enabled rules, compiled once per version and container."""
        return self._compiled.get(self.source.rules())

    def handle(self, detail_type: str, detail: Mapping[str, Any], now: datetime) -> Summary:
        summary = Summary()
        triggers = triggers_of(detail_type, detail)
        if not triggers:
            return summary
        ruleset = self.ruleset()
        candidates = [(trigger, rule) for trigger in triggers for rule in ruleset.matching(trigger)]
        if not candidates:
            return summary
        profile = self.profiles.profile(str(detail.get("profileId", "")))
        if profile is None:
            logger.warning("rules: profile not found", profile_id=detail.get("profileId"))
            return summary
        event = detail.get("event") if detail_type == "event.tracked" else None
        facts = Facts(profile=profile, event=event, now=now)
        depth = internal_events.depth_of(event) if event else _int(detail.get("depth"))
        effects = Effects()
        seen: set[str] = set()
        for trigger, compiled in candidates:
            if compiled.id in seen:
                continue  # one rule acts once per domain event, however many of its triggers it holds
            seen.add(compiled.id)
            summary.considered += 1
            verdict = judge(compiled, facts, depth=depth, max_depth=self.max_depth)
            if not verdict.matched:
                continue
            summary.matched += 1
            rule = compiled.rule
            occurrence = f"{trigger.kind}:{trigger.subject}:{trigger.occurrence}"
            if rule.refire.mode != "every":
                record = self.fires.get(profile.id, rule.id)
                # Firings for profiles merged into this one count as this person's.
                merged = self.fires.get_many(profile.merged_from, rule.id) if profile.merged_from else []
                allowed, reason = refire_allows(rule, inherited_record(record, merged), occurrence, now)
                if not allowed or not self.fires.record(profile.id, rule.id, occurrence, now, record):
                    summary.refused[rule.id] = reason if not allowed else "fired concurrently for this person"
                    continue
            if verdict.held_out:
                summary.held_out.append(rule.id)
                continue
            summary.fired.append(rule.id)
            planned = plan_actions(rule, profile, event, trigger, now, depth=depth)
            effects.messages.extend(planned.messages)
            effects.events.extend(planned.events)
            effects.offers.extend(planned.offers)
        for claim in effects.offers:
            effects.messages = self._issue(claim, profile, effects.messages, now)
        if effects.messages:
            self.messages.send(effects.messages)
        if effects.events:
            groups: dict[str, list[dict[str, Any]]] = {}
            for internal in effects.events:
                groups.setdefault(internal_events.person_key(internal), []).append(internal)
            self.events.send(groups)
        summary.messages, summary.events = len(effects.messages), len(effects.events)
        return summary

    def _issue(
        self, claim: OfferClaim, profile: Profile, messages: list[MessageRequest], now: datetime
    ) -> list[MessageRequest]:
        """Carry out an `issue_offer` action before the sends that use its code."""
        offer = self.offers.offer(claim.offer) if self.offers is not None else None
        if self.offers is None or offer is None:
            logger.warning("rules: offer not found", offer=claim.offer, rule=claim.rule)
            return with_offer_codes(messages, claim, None, "offer_not_found")
        member_of = [*profile.segments, *profile.static_segments]
        given = self.offers.issue(offer, profile.id, claim.cause, member_of, now, profile.merged_from)
        return with_offer_codes(messages, claim, given.code, given.reason)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
