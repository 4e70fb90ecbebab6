"""What offers decide, without I/O: generated codes and their check character, whether a person
may be given a code now (and the reason when not), a code's state, an uploaded list read, and how
a redemption is classed. The store (adapters/offer_store.py) makes the claims atomic."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from midstage.errors import ImportRefused, InvalidInput
from midstage.logic.csvfile import prepare, read_records
from midstage.logic.timefmt import parse_iso
from midstage.models.offers import POOL_CODE, Offer
from midstage.models.segments import SEGMENT_ID

# Crockford's base 32: no I, L, O or U, so a code read aloud or typed is not misread.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BASE = len(ALPHABET)
# Odd, so multiplying by it permutes the numbers modulo any power of two (32^n is one): sequence
# numbers map one to one onto codes, and neighbours do not look alike.
_SPREAD = 0x9E3779B97F4A7C15 | 1

Refusal = Literal[
    "pool_exhausted",
    "budget_exhausted",
    "per_person_limit",
    "outside_validity",
    "segment_not_allowed",
    "offer_disabled",
]
REFUSALS: tuple[Refusal, ...] = (
    "offer_disabled",
    "pool_exhausted",
    "budget_exhausted",
    "per_person_limit",
    "outside_validity",
    "segment_not_allowed",
)
CodeState = Literal["available", "issued", "redeemed", "expired"]
Redemption = Literal["redeemed", "redeemed_by_other", "redeemed_after_expiry", "already_redeemed", "unknown_code"]
REDEMPTIONS: tuple[Redemption, ...] = ("redeemed", "redeemed_by_other", "redeemed_after_expiry", "already_redeemed")
REDEMPTION_EVENTS = ("Order Completed", "Coupon Applied")


# ---------------------------------------------------------------------------- generated codes
def check_character(body: str) -> str:
    """Luhn mod 32 over the alphabet: a single mistyped character, or two neighbours swapped,
    changes it. Characters outside the alphabet (the pattern's dashes) are skipped."""
    total, factor = 0, 2
    for char in reversed([c for c in body if c in ALPHABET]):
        addend = factor * ALPHABET.index(char)
        total += addend // _BASE + addend % _BASE
        factor = 1 if factor == 2 else 2
    return ALPHABET[(_BASE - total % _BASE) % _BASE]


def has_valid_check(code: str) -> bool:
    return len(code) > 1 and code[-1] in ALPHABET and check_character(code[:-1]) == code[-1]


def capacity(pattern: str) -> int:
    """How many distinct codes a pattern can make."""
    return int(_BASE ** pattern.count("X"))


def generated_code(pattern: str, sequence: int, salt: int) -> str:
    """The `sequence`-th code of a pattern (0-based): each sequence number below capacity() gives
    another code, so codes are unique by construction; `salt` (per offer) makes two offers with
    one pattern hand out different codes. Not a secret: codes are not meant to be unguessable."""
    space = capacity(pattern)
    if not 0 <= sequence < space:
        raise ValueError(f"sequence {sequence} is outside the pattern's {space} codes")
    number = (sequence * _SPREAD + salt) % space
    digits = []
    for _ in range(pattern.count("X")):
        number, digit = divmod(number, _BASE)
        digits.append(ALPHABET[digit])
    filled = iter(digits)
    body = "".join(next(filled) if c == "X" else c for c in pattern)
    return body + check_character(body)


def salt_of(offer_id: str) -> int:
    """A fixed number per offer id (its characters folded), so the mapping is reproducible."""
    value = 0
    for char in offer_id:
        value = (value * 131 + ord(char)) % (1 << 61)
    return value


# ---------------------------------------------------------------------------- issuing
@dataclass(frozen=True)
class Holding:
    """What a person holds of one offer: the current code (if any), how many codes they were
    given in all, and the code each cause was answered with."""

    current: str | None = None
    current_slot: int | None = None
    count: int = 0
    causes: Mapping[str, str] | None = None
    version: int = 0
    # Merged-away profiles whose holdings this one took over (so they are counted once).
    absorbed: tuple[str, ...] = ()


def merged_holding(own: Holding, merged: Mapping[str, Holding]) -> Holding:
    """What a person holds once identity merges made them one: their own holding (its version, so
    the next write is conditioned on it) with the codes, causes and counts of each merged-away
    profile they have not taken over yet. The code they hold is their own, else the newest
    merged-away profile's (the last merged, `merged` in merge order), so the survivor is given
    the code a merged-away profile held, and its causes keep their answers."""
    fresh = {profile_id: held for profile_id, held in merged.items() if profile_id not in own.absorbed}
    if not fresh:
        return own
    causes: dict[str, str] = {}
    current, slot = own.current, own.current_slot
    for held in fresh.values():
        causes.update(held.causes or {})
        if own.current is None and held.current is not None:
            current, slot = held.current, held.current_slot
    causes.update(own.causes or {})
    return Holding(
        current=current,
        current_slot=slot,
        count=own.count + sum(held.count for held in fresh.values()),
        causes=causes,
        version=own.version,
        absorbed=(*own.absorbed, *fresh),
    )


def within_validity(offer: Offer, now: datetime) -> bool:
    if offer.valid_from and now < parse_iso(offer.valid_from):
        return False
    return not (offer.valid_until and now >= parse_iso(offer.valid_until))


def issue_limit(offer: Offer, pool_size: int) -> int:
    """How many codes the offer may hand out in all: its pool (or its pattern's capacity) and its
    total budget, whichever is smaller."""
    size = pool_size if offer.source == "pool" else capacity(offer.generated.pattern if offer.generated else "")
    return size if offer.budget.total is None else min(size, offer.budget.total)


def refusal_before_claim(offer: Offer, now: datetime, segments: Iterable[str], held: Holding) -> Refusal | None:
    """Why the person cannot be given a new code of the offer, judged before a code is claimed
    (the pool and the budget are judged at the claim, atomically)."""
    if not offer.enabled:
        return "offer_disabled"
    if not within_validity(offer, now):
        return "outside_validity"
    if offer.segments is not None and not set(offer.segments) & set(segments):
        return "segment_not_allowed"
    if held.count >= offer.budget.per_person:
        return "per_person_limit"
    return None


def leaves_pool_low(offer: Offer, pool_size: int, claimed_slot: int) -> int | None:
    """The codes left when claiming `claimed_slot` brings an uploaded pool down to its low mark
    (`pool_low_at`; 0: the last code), else None. Slots are claimed one at a time in order, so
    exactly one claim crosses the mark: the alarm is raised once (again only after an upload
    refills the pool and it runs down again)."""
    if offer.source != "pool":
        return None
    remaining = issue_limit(offer, pool_size) - (claimed_slot + 1)
    return remaining if remaining == offer.pool_low_at else None


def exhausted_reason(offer: Offer, issued: int) -> Refusal:
    """Which of the two limits a claim that found no code ran into."""
    if offer.budget.total is not None and issued >= offer.budget.total:
        return "budget_exhausted"
    return "pool_exhausted"


def code_state(stored: str, offer: Offer, now: datetime) -> CodeState:
    """A code's state as shown: an issued or available code past the offer's end is expired."""
    if stored == "redeemed":
        return "redeemed"
    if offer.valid_until and now >= parse_iso(offer.valid_until):
        return "expired"
    return "issued" if stored == "issued" else "available"


def holds_valid(held: Holding, state: str | None, offer: Offer, now: datetime) -> bool:
    """The person's current code is still theirs to use: issued, not redeemed, not expired."""
    return held.current is not None and state is not None and code_state(state, offer, now) == "issued"


@dataclass(frozen=True)
class Pool:
    """The offer's cursor: codes issued so far (`next`) and slots filled (`size`)."""

    next: int = 0
    size: int = 0


@dataclass(frozen=True)
class Upload:
    added: int
    duplicates: list[str]
    size: int


# ---------------------------------------------------------------------------- uploads
def read_codes(body: Any, content_type: str) -> list[str]:
    """Codes from an upload: `{"codes": [...]}` as JSON, or CSV text whose first column holds the
    codes (a header cell named `code` is skipped). Blank lines are skipped; the order is kept."""
    if "csv" in content_type or "text/plain" in content_type:
        if not isinstance(body, str):
            raise InvalidInput("a CSV upload is text", code="invalid_codes")
        try:
            records = list(read_records(prepare(body)))  # RFC 4180, any line ends
        except ImportRefused as refused:
            raise InvalidInput(str(refused), code="invalid_codes") from None
        unreadable = next(((line, problem) for line, _, problem in records if problem), None)
        if unreadable is not None:
            raise InvalidInput(f"line {unreadable[0]}: {unreadable[1]}", code="invalid_codes")
        rows = [cells[0].strip() for _, cells, _ in records if cells and cells[0].strip()]
        if rows and rows[0].lower() in ("code", "codes", "coupon"):
            rows = rows[1:]
        return rows
    if not isinstance(body, dict) or not isinstance(body.get("codes"), list):
        raise InvalidInput('send {"codes": ["..."]} as JSON or the codes as text/csv', code="invalid_codes")
    return [str(c).strip() for c in body["codes"]]


def check_codes(codes: list[str], limit: int) -> list[str]:
    """The codes, each once, every one well formed; else the upload is refused whole."""
    if not codes:
        raise InvalidInput("the upload holds no codes", code="invalid_codes")
    if len(codes) > limit:
        raise InvalidInput(f"at most {limit} codes per upload, not {len(codes)}", code="too_many_codes")
    bad = [c for c in codes if not POOL_CODE.fullmatch(c)]
    if bad:
        raise InvalidInput(
            f"{len(bad)} codes are not 3 to 64 letters, digits, '_' or '-' (first: {bad[0][:64]!r})",
            code="invalid_codes",
        )
    return list(dict.fromkeys(codes))


def read_code_lines(text: str | bytes) -> tuple[list[str], list[tuple[int, str]]]:
    """A dropped CSV of codes (the upload's CSV form: first column, an optional `code` header):
    the well-formed codes, each once, in order, and each line that holds none, with why. A bad
    line is reported and skipped, never the end of the file; a file that is not CSV text
    (binary, not UTF-8, too big) is refused whole (ImportRefused)."""
    codes: dict[str, None] = {}
    problems: list[tuple[int, str]] = []
    for index, (line, cells, problem) in enumerate(read_records(prepare(text))):
        code = cells[0].strip() if cells else ""
        if problem:
            problems.append((line, problem))
        elif index == 0 and code.lower() in ("code", "codes", "coupon"):
            continue
        elif not POOL_CODE.fullmatch(code):
            problems.append((line, f"{code[:64]!r} is not 3 to 64 letters, digits, '_' or '-'"))
        else:
            codes[code] = None
    return list(codes), problems


# ---------------------------------------------------------------------------- redemption
def coupon_of(event: Mapping[str, Any]) -> str | None:
    """The coupon a redemption event names (`properties.coupon`), if it is one."""
    if event.get("type") != "track" or event.get("event") not in REDEMPTION_EVENTS:
        return None
    coupon = (event.get("properties") or {}).get("coupon")
    return coupon.strip() if isinstance(coupon, str) and coupon.strip() else None


def order_amounts(event: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    """The order's revenue and discount (e-commerce spec: `revenue` or `total`, and `discount`);
    a Coupon Applied carries none."""
    if event.get("event") != "Order Completed":
        return Decimal(0), Decimal(0)
    properties = event.get("properties") or {}
    return _amount(properties.get("revenue", properties.get("total"))), _amount(properties.get("discount"))


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return Decimal(0)
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return Decimal(0)
    return amount if amount.is_finite() and amount >= 0 else Decimal(0)


def classify_redemption(
    holder: str | None, state: str, redeemer: str | Collection[str], offer: Offer, at: datetime
) -> Redemption:
    """How one use of a code is recorded: by its holder in time; by another person; after the
    offer ended; or a second use of a code already redeemed (by another order). `redeemer` is the
    profile, or its ids: its own and those of the profiles merged into it (a code issued to a
    merged-away profile is the survivor's own)."""
    if state == "redeemed":
        return "already_redeemed"
    redeemers = {redeemer} if isinstance(redeemer, str) else set(redeemer)
    if holder not in redeemers:  # a code never issued (holder None) was passed on by someone too
        return "redeemed_by_other"
    if offer.valid_until and at >= parse_iso(offer.valid_until):
        return "redeemed_after_expiry"
    return "redeemed"


# The offer's counters per cause are named `by#<group>#<figure>` (issued, redeemed, revenue, discount).
BY_CAUSE = "by#"
_GROUPED = ("campaign", "journey", "rule")
_GROUP_ID = re.compile(SEGMENT_ID)  # campaign, journey and rule ids have the definitions' id shape
# Named groups (`campaign:<id>`...) an offer counts on their own; past them, a new one is counted
# under OTHER_CAUSES. Causes come from API callers too: the figures (one stats item, under
# DynamoDB's 400 KB) must not grow with whatever they send.
MAX_CAUSE_GROUPS = 100
OTHER_CAUSES = "other"
FIXED_GROUPS = ("api", "template", OTHER_CAUSES)


def cause_group(cause: str) -> str:
    """What a cause is counted under in the per-cause figures: `campaign:<id>`, `journey:<id>`
    or `rule:<id>` (every run, step and person of it; the id must have a definition id's shape),
    `template` (a message's own `offer('<id>')`) or `api` (a cause named by a caller of
    POST /v1/offers/{id}/issue, and any cause whose id is not an id)."""
    kind, _, rest = cause.partition(":")
    if kind in _GROUPED and rest:
        ident = rest.split(":", 1)[0]
        return f"{kind}:{ident}" if _GROUP_ID.match(ident) else "api"
    return "template" if kind == "message" else "api"


def group_counter(group: str, figure: str) -> str:
    return f"{BY_CAUSE}{group}#{figure}"


def cause_counter(cause: str, figure: str) -> str:
    return group_counter(cause_group(cause), figure)


def by_cause(counts: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-cause figures out of the offer's counters: issued, redeemed, redemption rate,
    revenue and discount cost of each cause group, by group."""
    groups: dict[str, dict[str, Any]] = {}
    for name, value in counts.items():
        if name.startswith(BY_CAUSE) and name.count("#") == 2:
            group, figure = name[len(BY_CAUSE) :].rsplit("#", 1)
            groups.setdefault(group, {})[figure] = value
    shown = {}
    for group in sorted(groups):
        figures = groups[group]
        issued, redeemed = int(figures.get("issued", 0)), int(figures.get("redeemed", 0))
        shown[group] = {
            "issued": issued,
            "redeemed": redeemed,
            "redemptionRate": redemption_rate(issued, redeemed),
            "revenue": figures.get("revenue", 0),
            "discountCost": figures.get("discount", 0),
        }
    return shown


def redemption_rate(issued: int, redeemed: int) -> float:
    return round(redeemed / issued, 4) if issued else 0.0


def as_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Stored values as JSON-ready ones (DynamoDB numbers come back as Decimal)."""
    shown: dict[str, Any] = json.loads(json.dumps(values, default=_number))
    return shown


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
