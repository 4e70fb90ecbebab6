"""The deliver function's wiring: its ports and policy made from its settings and clock (the
adapters behind services/delivery.Ports), so the handler stays parsing, one call and mapping."""

from __future__ import annotations

from midstage.adapters.archive_stream import archive_sink
from midstage.adapters.channels import ApprovedTemplates, ChannelSenders, ChannelSettings
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.experiment_store import ExperimentTable, RecentExperiments
from midstage.adapters.messaging_store import CapStore, InboxStore, MessageLedger, SuppressionStore
from midstage.adapters.model_cards import ModelCardStore
from midstage.adapters.offer_store import OfferStore
from midstage.adapters.privacy_store import PersonSuppressions, Salt
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.providers import PushSender, WebhookSender
from midstage.adapters.sending_state import CampaignStates, ChannelPauses, SendRateBucket, SesSendRate
from midstage.adapters.timer_store import TimerStore
from midstage.clock import Clock
from midstage.config import DeliverySettings
from midstage.logic.delivery import Policy, parse_quiet_hours
from midstage.logic.predictions.cards import ModelCard
from midstage.logic.predictions.recommendations import popular_of
from midstage.services.delivery import Ports
from midstage.services.offers import OfferIssuer


def _parameters(card: ModelCard | None) -> dict[str, object] | None:
    return None if card is None else card.parameters


def delivery_wiring(settings: DeliverySettings, clock: Clock) -> tuple[Ports, Policy]:
    config = ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds)
    table = settings.data_table
    cards = ModelCardStore(settings.config_table, cache_seconds=settings.config_cache_seconds)
    senders = ChannelSenders(
        ChannelSettings.of(settings),
        config.key_ring,
        push=PushSender(settings.push_applications),
        webhook=WebhookSender(allow_local=settings.webhook_allow_local),
        inbox=InboxStore(table),
        popular=lambda: popular_of(_parameters(cards.latest_cached("recommendations"))),
        clock=clock,
    )

    def seconds() -> float:
        """Cache ages are read on the function's clock, so a test's clock moves them too."""
        return clock().timestamp()

    ports = Ports(
        ledger=MessageLedger(table, origin_shards=settings.origin_shards),
        profiles=ProfileStore(table),
        suppressions=SuppressionStore(table),
        caps=CapStore(table),
        templates=ApprovedTemplates(config),
        timers=TimerStore(table),
        channels=senders,
        origins=CampaignStates(config, monotonic=seconds),
        pauses=ChannelPauses(table, monotonic=seconds),
        pacer=SendRateBucket(table, {"email": SesSendRate(monotonic=seconds).rate}),
        offers=OfferIssuer(OfferStore(table)),
        privacy=PersonSuppressions(table, Salt(settings.config_table, create=True)),
        experiments=RecentExperiments(ExperimentTable(table), monotonic=seconds),
        exposures=archive_sink(settings.archive_stream),
    )
    policy = Policy(
        marketing_consent=settings.marketing_consent,
        caps=settings.frequency_caps,
        quiet_hours=parse_quiet_hours(settings.quiet_hours),
        default_timezone=settings.default_timezone,
        lease_seconds=settings.send_lease_seconds,
        global_control_share=settings.global_control_share,
        global_control_salt=settings.global_control_salt,
    )
    return ports, policy
