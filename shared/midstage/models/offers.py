"""Offers: a discount, a free delivery or a gift handed to people as unique codes.

An offer's codes come from a pool (uploaded, each handed out at most once) or are generated from
a pattern (unique by construction, with a check character). docs/offers.md describes the model.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from midstage.logic.timefmt import parse_iso
from midstage.models.segments import SEGMENT_ID

OFFER_ID = SEGMENT_ID
OfferKind = Literal["percentage", "amount_off", "free_shipping", "gift"]
CodeSource = Literal["pool", "generated"]
# A generated code's pattern: fixed characters and at least six `X`, each filled from the code's
# alphabet; the check character is appended.
PATTERN = re.compile(r"^[A-Z0-9-]{6,32}$")
MIN_FILLED = 6
MAX_FILLED = 12
# A pool code: what shop systems generate (letters, digits, a few separators).
POOL_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$")
CAUSE = r"^[A-Za-z0-9][A-Za-z0-9._:@+=#/-]{0,199}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Body):
    """How many codes may be issued: in all, and to one person (counting codes redeemed or lapsed:
    a person holding a valid code is always given that one again)."""

    total: int | None = Field(default=None, ge=1, le=100_000_000, description="default: no cap but the pool")
    per_person: int = Field(default=1, ge=1, le=1000)


class Generated(_Body):
    """Generated codes: `pattern` with each `X` filled, then one check character."""

    pattern: str = Field(default="XXXXXXXX", description="fixed characters and 6 to 12 `X`")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, pattern: str) -> str:
        filled = pattern.count("X")
        if not PATTERN.fullmatch(pattern) or not MIN_FILLED <= filled <= MAX_FILLED:
            raise ValueError(f"a pattern has letters, digits and '-' and {MIN_FILLED} to {MAX_FILLED} 'X'")
        return pattern


class OfferBody(_Body):
    """What an offer is; its codes are uploaded (pool) or made as they are issued (generated)."""

    name: str = Field(min_length=1, max_length=200)
    kind: OfferKind
    value: Decimal = Field(default=Decimal(0), ge=0, le=Decimal("1000000"), description="percent, or an amount")
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    valid_from: str | None = Field(default=None, description="ISO 8601 with a zone; default: always")
    valid_until: str | None = Field(default=None, description="ISO 8601 with a zone; default: never expires")
    budget: Budget = Field(default_factory=Budget)
    segments: list[str] | None = Field(default=None, max_length=50, description="only members of one of these")
    source: CodeSource = "pool"
    generated: Generated | None = None
    pool_low_at: int = Field(
        default=0, ge=0, description="codes left at which stats report `poolLow` and the OfferPoolLow alarm is raised"
    )

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _zoned(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            moment = parse_iso(value)
        except ValueError:
            raise ValueError("not an ISO 8601 date-time") from None
        if moment.tzinfo is None:
            raise ValueError("give a time zone (Z or +hh:mm)")
        return value

    @field_validator("segments")
    @classmethod
    def _segment_ids(cls, segments: list[str] | None) -> list[str] | None:
        for segment in segments or []:
            if not re.match(SEGMENT_ID, segment):
                raise ValueError(f"not a segment id: {segment!r}")
        return segments

    @model_validator(mode="after")
    def _consistent(self) -> OfferBody:
        if self.kind == "percentage" and not Decimal(0) < self.value <= 100:
            raise ValueError("a percentage offer's value is more than 0 and at most 100")
        if self.kind == "amount_off" and (self.value <= 0 or self.currency is None):
            raise ValueError("an amount_off offer needs a value above 0 and a currency")
        if self.valid_from and self.valid_until and parse_iso(self.valid_until) <= parse_iso(self.valid_from):
            raise ValueError("valid_until must be after valid_from")
        if self.source == "generated" and self.generated is None:
            self.generated = Generated()
        if self.source == "pool" and self.generated is not None:
            raise ValueError("`generated` is for source 'generated'")
        return self


class OfferCreate(OfferBody):
    """A new offer and the id it will be known by (codes and counters are kept under it)."""

    id: str = Field(pattern=OFFER_ID)


class OfferPatch(_Body):
    """What may change on a live offer: its name, window, budget, segments and low-pool mark
    (its kind, value and code source stay, since codes were handed out as such)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    valid_from: str | None = None
    valid_until: str | None = None
    budget: Budget | None = None
    segments: list[str] | None = Field(default=None, max_length=50)
    pool_low_at: int | None = Field(default=None, ge=0)
    enabled: StrictBool | None = None


class Offer(OfferBody):
    """A stored offer."""

    id: str
    enabled: bool = True
    created_at: str = ""
    updated_at: str = ""


class CodeUpload(_Body):
    """Codes for an offer's pool (a CSV text body is read into the same list)."""

    codes: list[str] = Field(min_length=1, max_length=5000)


class IssueRequest(_Body):
    """Hand the person one code of the offer for `cause` (the same cause always gets the same
    answer; a person holding a valid code is given that one again)."""

    profile: str = Field(min_length=1, max_length=1024)
    cause: str = Field(pattern=CAUSE, description="what issues it: a rule firing, a journey step, a message id")
