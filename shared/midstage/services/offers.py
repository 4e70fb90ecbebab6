"""Issuing and redeeming offer codes, for the admin API, rules, the deliverer (journeys',
campaigns' and templates' codes) and the rule evaluator's redemptions.

`issue` gives a person one code of an offer for a cause, or the reason not: the same cause always
gets the same answer, a person holding a valid code is given that one again, and a code goes to
one person at most however many callers ask at once (the store's claim is one transaction; a lost
race reads again and decides again). `redeem` applies a redemption event (`Order Completed`,
`Coupon Applied` with a `coupon`) to the code it names, once per event.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from midstage.errors import CauseGroupsFull, Stale, Unavailable
from midstage.logic import offers as rules
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.messaging import OfferRef
from midstage.models.offers import Offer
from midstage.models.profile import Profile
from midstage.observability import logger, metrics

# Claims on one pool queue behind its cursor; a caller keeps trying while others win, with a
# pause that grows and is spread (so the losers of one round do not all collide again).
MAX_ATTEMPTS = 200
_PAUSE_S = 0.002
_MAX_PAUSE_S = 0.05


class OfferStorePort(Protocol):
    def offer(self, offer_id: str) -> Offer | None: ...
    def deleted(self, offer_id: str) -> bool: ...
    def pool(self, offer_id: str) -> Any: ...
    def slot(self, offer_id: str, slot: int) -> dict[str, Any] | None: ...
    def holding(self, profile_id: str, offer_id: str) -> rules.Holding: ...
    def claim(
        self,
        offer_id: str,
        profile_id: str,
        cause: str,
        held: rules.Holding,
        seen: Any,
        now: datetime,
        *,
        code: str,
        generated: bool,
        group: str | None = None,
    ) -> None: ...
    def add_cause(self, profile_id: str, offer_id: str, cause: str, held: rules.Holding, now: datetime) -> None: ...
    def record_refusal(self, profile_id: str, offer_id: str, cause: str, reason: str, now: datetime) -> bool: ...
    def coupon(self, code: str) -> tuple[str, int] | None: ...
    def use(self, offer_id: str, event_id: str) -> dict[str, Any] | None: ...
    def redeem(
        self,
        offer_id: str,
        slot: int,
        seen_state: str,
        use: Mapping[str, Any],
        counts: Mapping[str, int | Decimal],
        *,
        first: bool,
    ) -> None: ...
    def record_unknown(self, code: str, profile_id: str, event_id: str, event: str, now: datetime) -> bool: ...


class OfferIssuing(Protocol):
    """Offers as rules, the deliverer and campaigns use them (OfferIssuer below)."""

    def offer(self, offer_id: str) -> Offer | None: ...
    def issue(
        self,
        offer: Offer,
        profile_id: str,
        cause: str,
        segments: Iterable[str],
        now: datetime,
        merged_from: Sequence[str] = (),
    ) -> Issued: ...


@dataclass(frozen=True)
class Issued:
    """What a person was given for a cause: a code (`outcome` says whether it is new, the one the
    cause already got, or the valid one they held), or the reason for none."""

    offer_id: str
    outcome: str  # issued | same_cause | already_held | refused
    code: str | None = None
    reason: str | None = None
    valid_until: str | None = None

    def to_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"offerId": self.offer_id, "outcome": self.outcome}
        if self.code is not None:
            shown["coupon"] = self.code
            shown["validUntil"] = self.valid_until
        if self.reason is not None:
            shown["reason"] = self.reason
        return shown


def report_pool_low(offer: Offer, remaining: int) -> None:
    """The low-pool alert: a warning in the log and the `OfferPoolLow` metric, which the stack's
    OfferPoolLowAlarm watches (docs/offers.md)."""
    logger.warning("offer pool low", offer=offer.id, remaining=remaining, pool_low_at=offer.pool_low_at)
    metrics.add_metric(name="OfferPoolLow", unit=MetricUnit.Count, value=1)


class OfferIssuer:
    def __init__(
        self,
        store: OfferStorePort,
        *,
        sleep: Callable[[float], None] = time.sleep,
        draw: Callable[[], float] = random.random,
        pool_low: Callable[[Offer, int], None] = report_pool_low,
        merged_into: Callable[[str], Sequence[str]] = lambda _: (),
    ) -> None:
        self.store = store
        self.sleep = sleep
        self.draw = draw
        self.pool_low = pool_low
        # The profiles merged into a person (Profile.merged_from), for a redemption: a code
        # issued to one of them is the person's own.
        self.merged_into = merged_into

    def offer(self, offer_id: str) -> Offer | None:
        """A live offer (deleted ones are no longer issued)."""
        found = self.store.offer(offer_id)
        return None if found is None or self.store.deleted(offer_id) else found

    def issue(
        self,
        offer: Offer,
        profile_id: str,
        cause: str,
        segments: Iterable[str],
        now: datetime,
        merged_from: Sequence[str] = (),
    ) -> Issued:
        """One code of `offer` for the person and cause, or why not (recorded with its reason).
        `merged_from`, the profiles merged into the person: what they held is the person's
        (logic/offers.merged_holding), taken over by the person's next holding write."""
        member_of = list(segments)
        group = rules.cause_group(cause)
        for attempt in range(MAX_ATTEMPTS):
            held = self._holding(profile_id, offer.id, merged_from)
            if held.causes and cause in held.causes:
                return self._given(offer, "same_cause", held.causes[cause])
            if held.current is not None and held.current_slot is not None:
                slot = self.store.slot(offer.id, held.current_slot)
                if rules.holds_valid(held, slot["state"] if slot else None, offer, now):
                    try:
                        self.store.add_cause(profile_id, offer.id, cause, held, now)
                    except Stale:
                        self._pause(attempt)
                        continue
                    return self._given(offer, "already_held", held.current)
            reason = rules.refusal_before_claim(offer, now, member_of, held)
            if reason is None:
                pool = self.store.pool(offer.id)
                if pool.next >= rules.issue_limit(offer, pool.size):
                    reason = rules.exhausted_reason(offer, pool.next)
            if reason is not None:
                self.store.record_refusal(profile_id, offer.id, cause, reason, now)
                return Issued(offer.id, "refused", reason=reason)
            try:
                code = self._code_at(offer, pool.next)
                self.store.claim(
                    offer.id,
                    profile_id,
                    cause,
                    held,
                    pool,
                    now,
                    code=code,
                    generated=offer.source == "generated",
                    group=group,
                )
            except CauseGroupsFull:
                group = rules.OTHER_CAUSES  # the offer counts as many groups as it may: this one is "other"
                continue
            except Stale:
                self._pause(attempt)
                continue
            low = rules.leaves_pool_low(offer, pool.size, pool.next)
            if low is not None:
                self.pool_low(offer, low)
            return self._given(offer, "issued", code)
        raise Unavailable(f"offer '{offer.id}': too many concurrent claims; try again", code="offer_contended")

    def _holding(self, profile_id: str, offer_id: str, merged_from: Sequence[str]) -> rules.Holding:
        own = self.store.holding(profile_id, offer_id)
        pending = [merged for merged in merged_from if merged not in own.absorbed and merged != profile_id]
        if not pending:
            return own
        return rules.merged_holding(own, {merged: self.store.holding(merged, offer_id) for merged in pending})

    def _code_at(self, offer: Offer, slot: int) -> str:
        if offer.source == "generated":
            pattern = offer.generated.pattern if offer.generated else ""
            return rules.generated_code(pattern, slot, rules.salt_of(offer.id))
        found = self.store.slot(offer.id, slot)
        if found is None:  # the slot is counted but its upload has not written it yet
            raise Stale(f"slot {slot} of offer '{offer.id}' is not written yet")
        return str(found["coupon"])

    def _given(self, offer: Offer, outcome: str, code: str) -> Issued:
        return Issued(offer.id, outcome, code=code, valid_until=offer.valid_until)

    def _pause(self, attempt: int) -> None:
        self.sleep(min(_MAX_PAUSE_S, _PAUSE_S * (1 + attempt)) * (0.5 + self.draw()))

    # ---------------------------------------------------------------- redemption
    def redeem_events(self, events: Sequence[Mapping[str, Any]], profile_id: str, now: datetime) -> list[str]:
        """Apply every redemption event among `events` (one person's, as applied to their
        profile); the outcome of each, in order. Events that name no coupon are skipped."""
        return [outcome for event in events if (outcome := self.redeem(event, profile_id, now)) is not None]

    def redeem(self, event: Mapping[str, Any], profile_id: str, now: datetime) -> str | None:
        coupon = rules.coupon_of(event)
        if coupon is None or not event.get("messageId"):
            return None
        # Message ids are unique within a source: the source makes them unique here.
        event_id = f"{event.get('sourceId') or ''}|{event['messageId']}"
        at = _event_time(event, now)
        found = self.store.coupon(coupon)
        if found is None:
            self.store.record_unknown(coupon, profile_id, event_id, str(event.get("event")), now)
            return "unknown_code"
        offer_id, slot_number = found
        offer = self.store.offer(offer_id)
        if offer is None:
            return None
        revenue, discount = rules.order_amounts(event)
        for attempt in range(MAX_ATTEMPTS):
            done = self.store.use(offer_id, event_id)
            if done is not None:
                return str(done["outcome"])
            slot = self.store.slot(offer_id, slot_number)
            if slot is None:
                return None
            state, holder = str(slot.get("state")), slot.get("holder")
            person = {profile_id}
            if slot.get("redeemedBy") not in (None, profile_id) or holder not in (None, profile_id):
                person.update(self.merged_into(profile_id))  # a merged-away profile's code is theirs
            # The same person's second event for one use (Coupon Applied, then Order Completed)
            # adds the order's figures to the redemption it continues.
            continues = state == "redeemed" and slot.get("redeemedBy") in person
            outcome = (
                str(slot.get("outcome")) if continues else rules.classify_redemption(holder, state, person, offer, at)
            )
            first = state != "redeemed"
            counts: dict[str, int | Decimal] = {"revenue": revenue, "discount": discount}
            if first:
                counts["redeemed"] = 1
            if not continues:
                counts[f"outcome_{outcome}"] = 1
            if slot.get("cause"):  # the figures of what issued the code (a pool code never issued has none)
                # Counted for the group its issue was counted for (which may be the overflow group).
                group = str(slot.get("causeGroup") or rules.cause_group(str(slot["cause"])))
                counts[rules.group_counter(group, "revenue")] = revenue
                counts[rules.group_counter(group, "discount")] = discount
                if first:
                    counts[rules.group_counter(group, "redeemed")] = 1
            use = {
                "eventId": event_id,
                "event": str(event.get("event")),
                "coupon": coupon,
                "profileId": profile_id,
                "outcome": outcome,
                "at": iso(at),
                "revenue": revenue,
                "discount": discount,
            }
            try:
                self.store.redeem(offer_id, slot_number, state, use, counts, first=first)
            except Stale:
                self._pause(attempt)
                continue
            return outcome
        raise Unavailable(f"offer '{offer_id}': too many concurrent redemptions", code="offer_contended")


def message_codes(
    issuer: OfferIssuing,
    profile: Profile,
    refs: Mapping[str, OfferRef],
    named: Iterable[str],
    message_id: str,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The codes one message shows, issued (or re-read) just before it renders: the vars its
    offer references fill (`<var>`, or `<var>_refused` with the reason), each for its own cause;
    and the code of each offer its template names with `offer('<id>')` (None when refused), for
    the cause `message:<id>` (or the answer its reference got, for an offer it carries), so a
    redelivered message shows the same code."""
    member_of = [*profile.segments, *profile.static_segments]

    def issued(offer_id: str, cause: str) -> Issued:
        offer = issuer.offer(offer_id)
        if offer is None:
            logger.warning("offers: offer not found", offer=offer_id, cause=cause)
            return Issued(offer_id, "refused", reason="offer_not_found")
        return issuer.issue(offer, profile.id, cause, member_of, now, profile.merged_from)

    variables: dict[str, Any] = {}
    answers: dict[str, Issued] = {}
    for var, ref in refs.items():
        given = answers.setdefault(ref.offer, issued(ref.offer, ref.cause))
        variables.update({var: given.code} if given.code is not None else {f"{var}_refused": given.reason})
    # An offer the message already carries is shown as that answer, not asked for a second cause.
    codes = {offer_id: (answers.get(offer_id) or issued(offer_id, f"message:{message_id}")).code for offer_id in named}
    return variables, codes


def _event_time(event: Mapping[str, Any], now: datetime) -> datetime:
    text = event.get("timestamp")
    if isinstance(text, str):
        try:
            moment = parse_iso(text)
        except ValueError:
            return now
        return moment if moment.tzinfo is not None else now
    return now
