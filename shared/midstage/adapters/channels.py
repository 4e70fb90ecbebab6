"""Rendering and sending on each channel: the one place that joins templates, tracking links and
the providers (SES, SNS SMS, SNS push, webhooks, the inbox table)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.messaging_store import InboxStore
from midstage.adapters.providers import (
    EmailSender,
    OutboundEmail,
    ProviderError,
    PushSender,
    SmsSender,
    WebhookSender,
)
from midstage.adapters.providers.errors import account_level
from midstage.clock import Clock
from midstage.config import DeliverySettings
from midstage.logic import links
from midstage.logic import templates as template_logic
from midstage.logic.delivery import Address, ProviderFailure, RenderFailure, zone_of
from midstage.logic.keyring import KeyRing
from midstage.logic.predictions.recommendations import for_person
from midstage.models.messaging import MessageRequest, Template
from midstage.models.profile import Profile
from midstage.observability import correlation_id, logger, tracer


@dataclass(frozen=True)
class ChannelSettings:
    email_sender: str
    configuration_set: str
    public_base_url: str
    sms_sender_id: str
    default_timezone: str

    @classmethod
    def of(cls, settings: DeliverySettings) -> ChannelSettings:
        return cls(
            email_sender=settings.email_sender,
            configuration_set=settings.ses_configuration_set,
            public_base_url=settings.public_base_url,
            sms_sender_id=settings.sms_sender_id,
            default_timezone=settings.default_timezone,
        )


class ApprovedTemplates:
    """The templates port of delivery: the approved version of a template, from the config table."""

    def __init__(self, config: ConfigStore) -> None:
        self.config = config

    def approved(self, template_id: str) -> Any:
        return self.config.approved_template(template_id)


def render_context(
    request: MessageRequest,
    profile: Profile,
    tz: str,
    unsubscribe_url: str | None,
    offers: Mapping[str, str | None] | None = None,
    popular: Callable[[], Sequence[str]] = tuple,
) -> template_logic.RenderContext:
    # The same variables as the admin API's preview, so a preview shows what will be sent.
    return template_logic.RenderContext(
        person=template_logic.person_context(profile),
        event=template_logic.event_context(request.event) if request.event else {},
        computed=dict(profile.computed),
        vars=dict(request.vars),
        tz=tz,
        links={"unsubscribe": unsubscribe_url} if unsubscribe_url else {},
        offers=dict(offers or {}),
        # The person's stored list; the best sellers (read only then) for someone without one.
        recommendations=for_person(profile.traits, ()) or for_person({}, popular()),
    )


def _shows_recommendations(template: Template) -> bool:
    return any("recommendations" in text for content in template.locales.values() for text in content.values())


class ChannelSenders:
    def __init__(
        self,
        settings: ChannelSettings,
        key_ring: Callable[[str], KeyRing],
        *,
        email: EmailSender | None = None,
        sms: SmsSender | None = None,
        push: PushSender | None = None,
        webhook: WebhookSender | None = None,
        inbox: InboxStore | None = None,
        popular: Callable[[], Sequence[str]] = tuple,
        clock: Clock,
        correlation_id: Callable[[], str | None] = correlation_id,
    ) -> None:
        self.settings = settings
        self.key_ring = key_ring
        self.email = email or EmailSender()
        self.sms = sms or SmsSender()
        self.push = push or PushSender({})
        self.webhook = webhook or WebhookSender()
        self.inbox = inbox
        self.popular = popular  # `recommendations(n)`'s fallback: the latest item model's best sellers
        self.clock = clock
        self._correlation_id = correlation_id

    @tracer.capture_method
    def send(
        self,
        channel: str,
        request: MessageRequest,
        profile: Profile,
        address: Address,
        template: Template | None,
        offers: Mapping[str, str | None] | None = None,
        before_call: Callable[[], None] | None = None,
    ) -> str:
        """`before_call` runs once everything is rendered and signed, just before the provider
        is called: the deliverer marks the ledger there (services/delivery.py)."""
        provider_id = self._send(channel, request, profile, address, template, offers, before_call or _nothing)
        # The last line of a request's trace: what the provider took, under the request's id.
        logger.info("provider accepted", channel=channel, message_id=request.message_id, provider_id=provider_id)
        return provider_id

    def _send(
        self,
        channel: str,
        request: MessageRequest,
        profile: Profile,
        address: Address,
        template: Template | None,
        offers: Mapping[str, str | None] | None,
        before_call: Callable[[], None],
    ) -> str:
        try:
            if channel == "webhook":
                return self._webhook(request, profile, address, before_call)
            assert template is not None
            unsubscribe = self._unsubscribe_url(request, profile, channel, address)
            tz = zone_of(profile, self.settings.default_timezone).key
            # The best sellers are read (cached) only for a template that shows recommendations.
            popular = self.popular if _shows_recommendations(template) else tuple
            context = render_context(request, profile, tz, unsubscribe, offers, popular)
            context.assets = template.assets
            try:
                rendered = template_logic.render(
                    template.channel,
                    template.locales,
                    template.variables,
                    locale=profile.locale,
                    default_locale=template.default_locale,
                    context=context,
                    timer=time.monotonic,
                ).fields
            except template_logic.RenderError as error:
                raise RenderFailure(str(error)) from error
            if channel == "email":
                return self._email(request, address, template, rendered, unsubscribe, before_call)
            if channel == "sms":
                sms_type = "Transactional" if request.category == "transactional" else "Promotional"
                before_call()
                return self.sms.send(address.value, rendered["body"], sms_type, self.settings.sms_sender_id or None)
            if channel == "push":
                data = {"messageId": request.message_id}
                before_call()
                return self.push.send(address.platform or "", address.value, rendered["title"], rendered["body"], data)
            if channel == "inbox":
                if self.inbox is None:
                    raise ProviderFailure("configuration", "no inbox store configured")
                before_call()
                self.inbox.put(profile.id, request.message_id, rendered["title"], rendered["body"], self.clock())
                return request.message_id
        except ProviderError as error:
            raise ProviderFailure(
                error.kind, error.reason, account=account_level(error), ambiguous=error.ambiguous
            ) from error
        raise ProviderFailure("configuration", f"unknown channel {channel}")

    # ------------------------------------------------------------------ per channel
    def _email(
        self,
        request: MessageRequest,
        address: Address,
        template: Template,
        rendered: dict[str, str],
        unsubscribe: str | None,
        before_call: Callable[[], None],
    ) -> str:
        html = rendered.get("html")
        base = self.settings.public_base_url.rstrip("/")
        if html and base:
            key = self.key_ring("links").current

            def click_url(url: str) -> str:
                return f"{base}/t/c/{links.sign(links.click_payload(request.message_id, url), key)}"

            html, _ = links.track_links(html, click_url, keep=[unsubscribe] if unsubscribe else [])
            pixel = f"{base}/t/o/{links.sign(links.open_payload(request.message_id), key)}"
            html = links.add_open_pixel(html, pixel)
        headers: dict[str, str] = {}
        if unsubscribe and request.category == "marketing":
            # RFC 8058: one-click unsubscribe that mail clients can POST to without a page.
            headers["List-Unsubscribe"] = f"<{unsubscribe}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email = OutboundEmail(
            sender=template.sender or self.settings.email_sender,
            to=address.value,
            subject=rendered.get("subject", ""),
            html=html,
            text=rendered.get("text"),
            headers=headers,
            configuration_set=self.settings.configuration_set or None,
            tags={
                "midstage-message": request.message_id,
                "origin": f"{request.origin.kind}-{request.origin.id}",
                # SES hands tags back on feedback and in its own logs: the request is findable there too.
                **({"correlation": correlated} if (correlated := self._correlation_id()) else {}),
            },
        )
        before_call()
        return self.email.send(email)

    def _unsubscribe_url(self, request: MessageRequest, profile: Profile, channel: str, address: Address) -> str | None:
        base = self.settings.public_base_url.rstrip("/")
        if not base or channel not in ("email", "sms"):
            return None
        payload = {"k": "u", "m": request.message_id, "p": profile.id, "a": address.value, "c": channel}
        return f"{base}/u/{links.sign(payload, self.key_ring('links').current)}"

    def _webhook(
        self, request: MessageRequest, profile: Profile, address: Address, before_call: Callable[[], None]
    ) -> str:
        include = set(request.webhook_include)
        payload: dict[str, Any] = {
            "id": request.message_id,
            "type": f"{request.origin.kind}.action",
            "origin": request.origin.model_dump(exclude_none=True),
            "profileId": profile.id,
            "requestedAt": request.requested_at,
        }
        if "event" in include and request.event:
            payload["event"] = request.event
        if "traits" in include:
            payload["traits"] = profile.traits
        if "computed" in include:
            payload["computed"] = profile.computed
        if "tags" in include:
            payload["tags"] = profile.tags
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        moment = self.clock()
        # Signed with every key still verifying, current first: a receiver holding the secret from
        # before a rotation keeps accepting requests until the old key expires.
        signing = [key.secret for key in self.key_ring("webhooks").verifying(moment)]
        before_call()
        status = self.webhook.send(address.value, body, signing, request.message_id, int(moment.timestamp()))
        return f"http-{status}"


def _nothing() -> None:
    """No mark to make before the provider call."""
