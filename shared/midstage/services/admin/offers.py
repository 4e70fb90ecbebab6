"""Offers through the admin API: define them, fill their pools, issue a code to a person, list
the codes with their state, and read the offer's figures."""

from __future__ import annotations

from typing import Any, Protocol

from midstage.clock import Clock
from midstage.config import IdentitySettings
from midstage.errors import Conflict, InvalidInput, NotFound
from midstage.logic import offers as rules
from midstage.logic.offers import Pool, Upload, as_json
from midstage.logic.timefmt import iso
from midstage.models.offers import IssueRequest, Offer, OfferCreate, OfferPatch
from midstage.services import profiles
from midstage.services.admin.ports import ProfileReader
from midstage.services.offers import OfferIssuer, OfferStorePort

MAX_UPLOAD = 5000


class OfferAdminStore(OfferStorePort, Protocol):
    def create(self, offer: Offer) -> None: ...
    def replace(self, offer: Offer) -> None: ...
    def offers(self) -> list[tuple[Offer, bool]]: ...
    def mark_deleted(self, offer_id: str, now: Any) -> None: ...
    def upload(self, offer_id: str, codes: list[str], now: Any) -> Upload: ...
    def slots(self, offer_id: str, limit: int, after: str | None) -> tuple[list[dict[str, Any]], str | None]: ...
    def stats(self, offer_id: str) -> dict[str, Any]: ...


class OfferAdmin:
    def __init__(
        self, store: OfferAdminStore, profiles: ProfileReader, identity: IdentitySettings, *, clock: Clock
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.identity = identity
        self.clock = clock
        self.issuer = OfferIssuer(store)

    def _offer(self, offer_id: str) -> Offer:
        offer = self.store.offer(offer_id)
        if offer is None or self.store.deleted(offer_id):
            raise NotFound(f"no offer '{offer_id[:64]}'")
        return offer

    def exists(self, offer_id: str) -> bool:
        """Whether an offer of this id can be issued from (rules, journeys, campaigns and templates
        naming one are checked on save)."""
        return self.store.offer(offer_id) is not None and not self.store.deleted(offer_id)

    def create(self, body: OfferCreate) -> dict[str, Any]:
        now = iso(self.clock())
        offer = Offer.model_validate({**body.model_dump(), "created_at": now, "updated_at": now})
        self.store.create(offer)
        return present(offer, Pool())

    def list(self) -> dict[str, Any]:
        return {"offers": [present(o, self.store.pool(o.id)) for o, deleted in self.store.offers() if not deleted]}

    def get(self, offer_id: str) -> dict[str, Any]:
        return present(self._offer(offer_id), self.store.pool(offer_id))

    def patch(self, offer_id: str, body: OfferPatch) -> dict[str, Any]:
        offer = self._offer(offer_id)
        changes = body.model_dump(exclude_unset=True)
        if not changes:
            raise InvalidInput("give at least one field to change", code="invalid_body")
        try:
            changed = Offer.model_validate(
                {**offer.model_dump(), **changes, "updated_at": iso(self.clock())}, strict=False
            )
        except ValueError as error:
            raise InvalidInput(f"the offer would not be valid: {error}"[:500], code="invalid_offer") from error
        self.store.replace(changed)
        return present(changed, self.store.pool(offer_id))

    def delete(self, offer_id: str) -> None:
        """The offer stops being issued and listed; its codes, holdings and figures stay, so codes
        already handed out are still redeemed and counted."""
        self._offer(offer_id)
        self.store.mark_deleted(offer_id, self.clock())

    def upload(self, offer_id: str, body: Any, content_type: str) -> dict[str, Any]:
        offer = self._offer(offer_id)
        if offer.source != "pool":
            raise Conflict(f"offer '{offer_id}' generates its codes; it has no pool", code="offer_not_pooled")
        codes = rules.check_codes(rules.read_codes(body, content_type), MAX_UPLOAD)
        done = self.store.upload(offer_id, codes, self.clock())
        return {"offerId": offer_id, "added": done.added, "duplicates": done.duplicates, "poolSize": done.size}

    def codes(self, offer_id: str, state: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        """A page of the offer's codes with their state (a `state` filter applies within the page:
        a filtered page may hold fewer than `limit`; follow `cursor` to the end)."""
        offer = self._offer(offer_id)
        if state is not None and state not in ("available", "issued", "redeemed", "expired"):
            raise InvalidInput("state is available, issued, redeemed or expired", code="invalid_query")
        if cursor is not None and not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 12):
            raise InvalidInput("'cursor' is not one this listing returned", code="invalid_cursor")
        now = self.clock()
        items, after = self.store.slots(offer_id, limit, cursor)
        shown = []
        for item in items:
            entry = {
                "coupon": item["coupon"],
                "state": rules.code_state(str(item.get("state")), offer, now),
                "slot": item["slot"],
            }
            for stored, name in (
                ("holder", "profileId"),
                ("cause", "cause"),
                ("issuedAt", "issuedAt"),
                ("redeemedAt", "redeemedAt"),
                ("redeemedBy", "redeemedBy"),
                ("outcome", "outcome"),
                ("revenue", "revenue"),
            ):
                if stored in item:
                    entry[name] = item[stored]
            if state is None or entry["state"] == state:
                shown.append(entry)
        return as_json({"offerId": offer_id, "codes": shown, "cursor": after})

    def issue(self, offer_id: str, body: IssueRequest) -> dict[str, Any]:
        offer = self._offer(offer_id)
        person = profiles.resolve(body.profile, self.profiles, self.identity)
        member_of = [*person.segments, *person.static_segments]
        given = self.issuer.issue(offer, person.id, body.cause, member_of, self.clock(), person.merged_from)
        return {**given.to_dict(), "profileId": person.id}

    def stats(self, offer_id: str) -> dict[str, Any]:
        offer = self._offer(offer_id)
        pool = self.store.pool(offer_id)
        counts = self.store.stats(offer_id)
        redeemed = int(counts.get("redeemed", 0))
        remaining = max(0, rules.issue_limit(offer, pool.size) - pool.next)
        return as_json(
            {
                "offerId": offer_id,
                "issued": pool.next,
                "redeemed": redeemed,
                "redemptionRate": rules.redemption_rate(pool.next, redeemed),
                "revenue": counts.get("revenue", 0),
                "discountCost": counts.get("discount", 0),
                "poolSize": pool.size if offer.source == "pool" else None,
                "remaining": remaining,
                "poolLow": offer.source == "pool" and remaining <= offer.pool_low_at,
                "refusals": {r: int(counts.get(f"refused_{r}", 0)) for r in rules.REFUSALS},
                "redemptions": {r: int(counts.get(f"outcome_{r}", 0)) for r in rules.REDEMPTIONS},
                "byCause": rules.by_cause(counts),
            }
        )


def present(offer: Offer, pool: Pool) -> dict[str, Any]:
    shown = as_json(offer.model_dump())
    shown["issued"] = pool.next
    if offer.source == "pool":
        shown["poolSize"] = pool.size
    return shown
