"""Rules, message templates and the messages they produce (API payloads and stored documents)."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

Channel = Literal["email", "sms", "push", "inbox", "webhook"]
Category = Literal["marketing", "transactional"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "push", "inbox", "webhook")

_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_TAG = r"^[A-Za-z0-9][A-Za-z0-9 _:.-]{0,63}$"
_TRAIT = r"^[A-Za-z0-9_$-][A-Za-z0-9_$.-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------- rules
class Trigger(_Strict):
    """What makes a rule look at a person: an event, a trait or tag change, a segment change."""

    type: Literal[
        "event", "trait_changed", "computed_changed", "tag_added", "tag_removed", "segment_entered", "segment_exited"
    ]
    event: str | None = Field(default=None, min_length=1, max_length=200, description="event name, or * for any")
    where: dict[str, Any] | None = Field(default=None, description="a condition on the event")
    trait: str | None = Field(default=None, pattern=_TRAIT)
    tag: str | None = Field(default=None, pattern=_TAG)
    segment: str | None = Field(default=None, pattern=_ID)

    @model_validator(mode="after")
    def _needs_its_subject(self) -> Trigger:
        needed = {
            "event": "event",
            "trait_changed": "trait",
            "computed_changed": "trait",
            "tag_added": "tag",
            "tag_removed": "tag",
            "segment_entered": "segment",
            "segment_exited": "segment",
        }[self.type]
        if getattr(self, needed) is None:
            raise ValueError(f"a {self.type} trigger needs `{needed}`")
        extra = [f for f in ("event", "trait", "tag", "segment") if f != needed and getattr(self, f) is not None]
        if extra:
            raise ValueError(f"a {self.type} trigger does not take {', '.join(extra)}")
        if self.where is not None and self.type != "event":
            raise ValueError("`where` filters an event trigger's event; use `conditions` for the person")
        return self


class SendAction(_Strict):
    type: Literal["send"]
    channels: list[Channel] = Field(min_length=1, max_length=5, description="in fallback order")
    template: str | dict[Channel, str] = Field(description="a template id, or one per channel")
    category: Category = "marketing"
    vars: dict[str, Any] = Field(default_factory=dict)
    experiment: str | None = Field(
        default=None,
        pattern=_ID,
        description="an experiment whose arms split this send per person (docs/experiments.md)",
    )

    @field_validator("template")
    @classmethod
    def _template_ids(cls, template: str | dict[Channel, str]) -> str | dict[Channel, str]:
        for template_id in [template] if isinstance(template, str) else template.values():
            if not re.match(_ID, template_id):
                raise ValueError(f"not a template id: {template_id!r}")
        return template

    @model_validator(mode="after")
    def _a_template_per_channel(self) -> SendAction:
        if isinstance(self.template, dict) and set(self.channels) - set(self.template):
            raise ValueError(f"no template for {sorted(set(self.channels) - set(self.template))}")
        return self

    @field_validator("channels")
    @classmethod
    def _distinct(cls, channels: list[Channel]) -> list[Channel]:
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is listed twice")
        if "webhook" in channels:
            raise ValueError("use a `webhook` action to call a URL")
        return channels


class TagAction(_Strict):
    type: Literal["add_tag", "remove_tag"]
    tag: str = Field(pattern=_TAG)


class SetTraitAction(_Strict):
    type: Literal["set_trait"]
    trait: str = Field(pattern=_TRAIT)
    value: str | int | float | bool | None


WebhookPart = Literal["event", "traits", "computed", "tags"]
_DEFAULT_WEBHOOK_PARTS: tuple[WebhookPart, ...] = ("event", "traits")


class WebhookAction(_Strict):
    type: Literal["webhook"]
    url: HttpUrl
    include: list[WebhookPart] = Field(default_factory=lambda: list(_DEFAULT_WEBHOOK_PARTS))


class EmitEventAction(_Strict):
    type: Literal["emit_event"]
    event: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


class IssueOfferAction(_Strict):
    """Give the person a code of an offer (docs/offers.md); the rule's later `send` actions get it
    as `vars.<var>`. Idempotent per person and firing: a redelivered event takes no second code."""

    type: Literal["issue_offer"]
    offer: str = Field(pattern=_ID)
    var: str = Field(default="coupon", pattern=r"^[a-z][a-z0-9_]{0,39}$")


Action = Annotated[
    SendAction | TagAction | SetTraitAction | WebhookAction | EmitEventAction | IssueOfferAction,
    Field(discriminator="type"),
]


class Refire(_Strict):
    """How often one person can set a rule off: once, at most once per `days`, or every time."""

    mode: Literal["once", "cooldown", "every"] = "once"
    days: int | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _days_for_cooldown(self) -> Refire:
        if (self.mode == "cooldown") != (self.days is not None):
            raise ValueError("`days` is needed for mode cooldown, and only there")
        return self


class RuleBody(_Strict):
    """What a user writes (API payload or YAML file)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    enabled: bool = True
    priority: int = Field(default=0, ge=-1000, le=1000, description="higher runs first")
    trigger: Trigger
    conditions: dict[str, Any] | None = None
    actions: list[Action] = Field(min_length=1, max_length=10)
    refire: Refire = Field(default_factory=Refire)
    valid_from: str | None = Field(default=None, description="ISO 8601; the rule is inactive before")
    valid_until: str | None = Field(default=None, description="ISO 8601; the rule is inactive after")
    holdout_percent: float = Field(default=0, ge=0, le=100, description="a control group that gets no actions")


class Rule(RuleBody):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=_ID)
    version: int = 1
    created_at: str = ""
    updated_at: str = ""
    updated_by: str = ""


# ------------------------------------------------------------------------------- templates
class VariableSpec(_Strict):
    default: Any = None
    required: bool = False


class TemplateBody(_Strict):
    name: str = Field(min_length=1, max_length=200)
    channel: Literal["email", "sms", "push", "inbox"]
    default_locale: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
    locales: dict[str, dict[str, str]] = Field(min_length=1, max_length=20)
    variables: dict[str, VariableSpec] = Field(default_factory=dict, max_length=200)
    sender: str | None = Field(default=None, max_length=320, description="email From; the platform default if unset")

    @model_validator(mode="after")
    def _default_locale_exists(self) -> TemplateBody:
        if self.default_locale not in self.locales:
            raise ValueError(f"default_locale {self.default_locale!r} has no content in `locales`")
        return self


class Template(TemplateBody):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=_ID)
    version: int = 1
    status: Literal["draft", "approved", "archived"] = "draft"
    created_at: str = ""
    updated_by: str = ""
    approved_at: str | None = None
    approved_by: str | None = None
    # The URL of each asset the template names with `asset('<name>')`, as published when this
    # version was saved or approved (services/admin/templates.py).
    assets: dict[str, str] = Field(default_factory=dict)


# ------------------------------------------------------------------------------- messages
class Origin(_Strict):
    kind: Literal["rule", "campaign", "journey", "api"]
    id: str
    version: int | None = None
    step: str = ""


class OfferRef(_Strict):
    """A code a message carries as a variable: the deliverer issues (or re-reads) the person's code
    of `offer` for `cause` just before rendering, so every delivery of the message, and every
    message naming the same cause, shows the same code (docs/offers.md)."""

    offer: str = Field(pattern=_ID)
    cause: str = Field(min_length=1, max_length=512)


class MessageRequest(_Strict):
    """One intended send, queued for the deliver function. Its `key` names it for the ledger:
    the same (origin, step, person) is sent at most once however often it is requested."""

    key: str = Field(min_length=1, max_length=512)
    origin: Origin
    profile_id: str
    channels: list[Channel] = Field(min_length=1, max_length=5)
    category: Category = "marketing"
    template: str | dict[Channel, str] | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    # `vars.<name>` filled with the code of an offer (or `<name>_refused` with the reason) at delivery.
    offers: dict[str, OfferRef] = Field(default_factory=dict, max_length=10)
    event: dict[str, Any] | None = None
    webhook_url: str | None = None
    webhook_include: list[str] = Field(default_factory=list)
    requested_at: str
    # Set by the timer sweep when a deferred message is released: the scheduler's time, which
    # is when the deferral ended even if this container's clock lags.
    released_at: str | None = None
    # An experiment whose arms split this send: the deliverer deals the person an arm.
    experiment: str | None = None

    @property
    def message_id(self) -> str:
        return message_id_for(self.key)

    def template_for(self, channel: str) -> str | None:
        if isinstance(self.template, dict):
            return self.template.get(channel)  # type: ignore[call-overload]
        return self.template


# The events a message of ours causes on its person (the feedback and engagement functions track
# them); each carries the message's id in `properties.messageId`.
MESSAGE_EVENTS = frozenset(
    {"Email Delivered", "Email Bounced", "Email Marked as Spam", "Email Opened", "Email Link Clicked", "Unsubscribed"}
)


def message_id_for(key: str) -> str:
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:24]


MessageStatus = Literal[
    "queued", "sending", "deferred", "sent", "blocked", "failed", "cancelled", "delivered", "bounced"
]
FINAL_STATUSES = frozenset({"sent", "blocked", "failed", "cancelled", "delivered", "bounced"})
