"""Inbound webhook sources: the kinds a source may be, and a generic source's declarative mapping.

A mapping is data, written in JMESPath (a specified, well-kept query language): every expression
is compiled when the source is saved, so a bad one is refused with its location then, never met
at intake.
"""

from __future__ import annotations

from typing import Literal

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SourceKind = Literal["segment", "shopify", "stripe", "generic"]
WEBHOOK_KINDS: frozenset[str] = frozenset({"shopify", "stripe", "generic"})
MAX_CALLS = 20


def compiled(expression: str) -> str:
    """`expression` if it compiles, else a ValueError naming what is wrong (pydantic adds where)."""
    try:
        jmespath.compile(expression)
    except JMESPathError as error:
        raise ValueError(f"not a valid JMESPath expression ({' '.join(str(error).split())})") from None
    return expression


class WebhookAuth(BaseModel):
    """How a generic source's sender proves itself: an HMAC-SHA256 of the raw body in a header
    (`prefix` is what precedes the digest, e.g. `sha256=`), or `Authorization: Bearer <secret>`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["hmac", "bearer"]
    header: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9-]+$")
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = Field(default="", max_length=32)

    @model_validator(mode="after")
    def _header_for_hmac(self) -> WebhookAuth:
        if self.type == "hmac" and not self.header:
            raise ValueError("an hmac authentication names the `header` that carries the signature")
        if self.type == "bearer" and (self.header or self.prefix):
            raise ValueError("a bearer authentication reads `Authorization`: give no `header` or `prefix`")
        return self


Expressions = dict[str, str] | str


class CallMapping(BaseModel):
    """One identify or track call made from the body (from each element of `each`, when given).

    Every value is a JMESPath expression evaluated against the body (or the element): a literal
    is written as one (`'Deal Won'`). `traits` and `properties` are either one expression that
    yields an object or an object of name -> expression."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["identify", "track"]
    each: str | None = Field(default=None, max_length=1000, description="an expression yielding a list")
    when: str | None = Field(default=None, max_length=1000, description="the call is made where this is truthy")
    event: str | None = Field(default=None, max_length=1000)
    userId: str | None = Field(default=None, max_length=1000)
    anonymousId: str | None = Field(default=None, max_length=1000)
    traits: Expressions | None = None
    properties: Expressions | None = None
    messageId: str = Field(max_length=1000, description="the id that dedupes a redelivery")
    timestamp: str | None = Field(default=None, max_length=1000)

    @field_validator("each", "when", "event", "userId", "anonymousId", "messageId", "timestamp")
    @classmethod
    def _expression(cls, value: str | None) -> str | None:
        return compiled(value) if value is not None else None

    @field_validator("traits", "properties")
    @classmethod
    def _fields(cls, value: Expressions | None) -> Expressions | None:
        if isinstance(value, str):
            return compiled(value)
        if isinstance(value, dict):
            if len(value) > 100:
                raise ValueError("at most 100 fields")
            for name, expression in value.items():
                if not name or len(name) > 200:
                    raise ValueError("a field name has 1 to 200 characters")
                try:
                    compiled(expression)
                except ValueError as error:
                    raise ValueError(f"field '{name}': {error}") from None
        return value

    @model_validator(mode="after")
    def _complete(self) -> CallMapping:
        if self.type == "track" and self.event is None:
            raise ValueError("a track call needs an `event` expression")
        if self.type == "identify" and (self.event is not None or self.properties is not None):
            raise ValueError("an identify call has `traits`, not `event` or `properties`")
        if self.userId is None and self.anonymousId is None:
            raise ValueError("a call needs a `userId` or an `anonymousId` expression")
        return self


class WebhookMapping(BaseModel):
    """A generic source's mapping: how its sender authenticates, and the calls a body makes."""

    model_config = ConfigDict(extra="forbid")

    auth: WebhookAuth
    calls: list[CallMapping] = Field(min_length=1, max_length=MAX_CALLS)
