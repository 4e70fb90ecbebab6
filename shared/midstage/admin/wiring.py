"""The admin API's composition root: its stores and one service per resource, each made on first
use (no client exists before a request needs it) from the function's settings and clock."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from midstage.adapters.archive_stream import FirehoseArchive
from midstage.adapters.asset_store import AssetFiles, AssetStore
from midstage.adapters.audit_store import AuditStore
from midstage.adapters.automation_store import CampaignRuns, JourneyInstances, RefreshJobs
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.counters import Counters
from midstage.adapters.dead_letters import BusRedrive, DeadLetterQueue, FailureLog
from midstage.adapters.destination_senders import DestinationSender
from midstage.adapters.destination_store import DestinationStore
from midstage.adapters.experiment_store import ExperimentTable
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.import_store import ImportFiles, ImportJobs
from midstage.adapters.messaging_store import FireRecords, InboxStore, MessageLedger, SuppressionStore
from midstage.adapters.model_cards import ModelCardStore
from midstage.adapters.offer_store import OfferStore
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue
from midstage.adapters.scheduler import CampaignSchedules
from midstage.adapters.sending_state import ChannelPauses
from midstage.clock import Clock
from midstage.config import AdminSettings, CollectSettings, IdentitySettings, computed_trait_settings, identity_settings
from midstage.errors import Unavailable
from midstage.services.admin.assets import AssetAdmin, names_in_use
from midstage.services.admin.audit import AuditAdmin
from midstage.services.admin.campaigns import CampaignAdmin
from midstage.services.admin.destinations import DestinationAdmin
from midstage.services.admin.journeys import JourneyAdmin
from midstage.services.admin.messages import MessageAdmin
from midstage.services.admin.offers import OfferAdmin
from midstage.services.admin.people import ConsentAdmin, InboxAdmin
from midstage.services.admin.profiles import ProfileAdmin
from midstage.services.admin.rules import RuleAdmin
from midstage.services.admin.segments import SegmentAdmin
from midstage.services.admin.settings import SecretAdmin
from midstage.services.admin.sources import ApiKeyAdmin, SourceAdmin
from midstage.services.admin.spend import SpendAdmin
from midstage.services.admin.suppressions import SuppressionAdmin
from midstage.services.admin.templates import TemplateAdmin
from midstage.services.bulk_import import BulkImports
from midstage.services.dead_letters import DeadLetters, parse_specs

if TYPE_CHECKING:
    from midstage.services.admin.reports import ReportAdmin
    from midstage.services.analytics import Engine
    from midstage.services.experiments import Experiments
    from midstage.services.privacy import PrivacyRequests

# Campaign schedules are named `<prefix>-campaign-<id>` inside the stack's own schedule group.
SCHEDULE_PREFIX = "midstage"


class AdminWiring:
    def __init__(self, settings: AdminSettings, *, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock

    # -------------------------------------------------------------- stores
    @cached_property
    def config(self) -> ConfigStore:
        return ConfigStore(self.settings.config_table, cache_seconds=self.settings.config_cache_seconds)

    @cached_property
    def definitions(self) -> ConfigStore:
        """Definitions read uncached: a save is checked against the others as they are now."""
        return ConfigStore(self.settings.config_table, cache_seconds=0)

    @cached_property
    def profiles(self) -> ProfileStore:
        return ProfileStore(self.settings.data_table)

    @cached_property
    def counters(self) -> Counters:
        return Counters(self.settings.data_table, shards=self.settings.stats_shards)

    @cached_property
    def ingest(self) -> SqsHandoff:
        return SqsHandoff(self.settings.ingest_queue_url)

    @cached_property
    def identity(self) -> IdentitySettings:
        return identity_settings()

    @cached_property
    def max_window_days(self) -> int:
        return max(computed_trait_settings().count_windows_days)

    # -------------------------------------------------------------- services
    @cached_property
    def audit(self) -> AuditAdmin:
        return AuditAdmin(AuditStore(self.settings.audit_table), clock=self.clock)

    @cached_property
    def sources(self) -> SourceAdmin:
        return SourceAdmin(self.config, self.profiles, clock=self.clock)

    @cached_property
    def secrets(self) -> SecretAdmin:
        return SecretAdmin(self.config, clock=self.clock)

    @cached_property
    def api_keys(self) -> ApiKeyAdmin:
        return ApiKeyAdmin(self.config, clock=self.clock)

    @cached_property
    def profile_lookup(self) -> ProfileAdmin:
        return ProfileAdmin(self.profiles, self.identity)

    @cached_property
    def rules(self) -> RuleAdmin:
        data = self.settings.data_table
        return RuleAdmin(
            self.config,
            self.profiles,
            FireRecords(data),
            self.ledger,
            self.identity,
            max_window_days=self.max_window_days,
            clock=self.clock,
            offer_exists=self.offers.exists,
        )

    @cached_property
    def ledger(self) -> MessageLedger:
        return MessageLedger(self.settings.data_table, origin_shards=self.settings.origin_shards)

    @cached_property
    def templates(self) -> TemplateAdmin:
        return TemplateAdmin(
            self.config,
            self.profiles,
            self.identity,
            clock=self.clock,
            asset_url=self.assets.published_url,
            offer_exists=self.offers.exists,
        )

    @cached_property
    def messages(self) -> MessageAdmin:
        delivery = MessageQueue(self.settings.delivery_queue_url)
        return MessageAdmin(self.config, self.profiles, self.ledger, delivery, self.identity, clock=self.clock)

    @cached_property
    def consent(self) -> ConsentAdmin:
        return ConsentAdmin(self.profiles, self.ingest, self.identity, clock=self.clock)

    @cached_property
    def inbox(self) -> InboxAdmin:
        return InboxAdmin(self.profiles, InboxStore(self.settings.data_table), self.identity, clock=self.clock)

    @cached_property
    def model_cards(self) -> ModelCardStore:
        return ModelCardStore(self.settings.config_table)

    @cached_property
    def channel_pauses(self) -> ChannelPauses:
        return ChannelPauses(self.settings.data_table)

    @cached_property
    def suppressions(self) -> SuppressionAdmin:
        return SuppressionAdmin(SuppressionStore(self.settings.data_table), clock=self.clock)

    @cached_property
    def segments(self) -> SegmentAdmin:
        settings = self.settings
        return SegmentAdmin(
            self.definitions,
            self.profiles,
            RefreshJobs(settings.data_table),
            MessageQueue(settings.refresh_queue_url),
            self.ingest,
            self.identity,
            refresh_parts=settings.refresh_parts,
            max_window_days=self.max_window_days,
            clock=self.clock,
        )

    @cached_property
    def bulk_imports(self) -> BulkImports:
        settings = self.settings
        if not settings.archive_bucket or not settings.import_queue_url:
            raise Unavailable("bulk imports are not configured here (ARCHIVE_BUCKET, IMPORT_QUEUE_URL)")
        # The admin function starts imports and reads their progress; the parts' intake runs in
        # functions/run_imports, with its own settings.
        collect = CollectSettings(
            data_table=settings.data_table,
            config_table=settings.config_table,
            ingest_queue_url=settings.ingest_queue_url,
        )
        return BulkImports(
            ImportJobs(settings.data_table),
            ImportFiles(settings.archive_bucket),
            MessageQueue(settings.import_queue_url),
            self.definitions,
            self.profiles,
            self.ingest,
            collect,
            self.identity,
            clock=self.clock,
        )

    @cached_property
    def campaigns(self) -> CampaignAdmin:
        settings = self.settings
        schedules = CampaignSchedules(
            prefix=SCHEDULE_PREFIX,
            target_arn=settings.campaign_runner_arn,
            role_arn=settings.scheduler_role_arn,
            group=settings.schedule_group,
        )
        return CampaignAdmin(
            self.definitions,
            CampaignRuns(settings.data_table),
            self.counters,
            MessageQueue(settings.campaign_queue_url),
            schedules,
            clock=self.clock,
            offer_exists=self.offers.exists,
            experiments=ExperimentTable(settings.data_table),
        )

    @cached_property
    def journeys(self) -> JourneyAdmin:
        return JourneyAdmin(
            self.definitions,
            self.profiles,
            self.counters,
            JourneyInstances(self.settings.data_table),
            self.identity,
            max_window_days=self.max_window_days,
            clock=self.clock,
            offer_exists=self.offers.exists,
        )

    @cached_property
    def offers(self) -> OfferAdmin:
        return OfferAdmin(OfferStore(self.settings.data_table), self.profiles, self.identity, clock=self.clock)

    @cached_property
    def assets(self) -> AssetAdmin:
        settings = self.settings
        return AssetAdmin(
            AssetStore(settings.config_table),
            AssetFiles(settings.assets_bucket) if settings.assets_bucket else None,
            base_url=settings.assets_base_url,
            clock=self.clock,
            used_by=lambda name: names_in_use(self.definitions.list_templates(), name),
        )

    @cached_property
    def dead_letters(self) -> DeadLetters:
        queues: dict[str, DeadLetterQueue] = {}

        def queue(url: str) -> DeadLetterQueue:
            return queues.setdefault(url, DeadLetterQueue(url))

        return DeadLetters(
            parse_specs(self.settings.dead_letter_queues),
            queue,
            FailureLog(self.settings.data_table),
            BusRedrive(self.settings.event_bus_name),
        )

    @cached_property
    def destinations(self) -> DestinationAdmin:
        vetting = DestinationSender(allow_local=self.settings.webhook_allow_local)
        return DestinationAdmin(
            self.definitions,
            DestinationStore(self.settings.data_table),
            vetting.check_url,
            max_window_days=self.max_window_days,
            clock=self.clock,
        )

    @cached_property
    def regulations(self) -> PrivacyRequests:
        from midstage.privacy_wiring import privacy_requests

        settings = self.settings
        if not settings.import_queue_url:
            raise Unavailable("privacy requests are worked on the import queue: set IMPORT_QUEUE_URL")
        return privacy_requests(
            settings.data_table,
            settings.config_table,
            settings.archive_bucket,
            MessageQueue(settings.import_queue_url),
            clock=self.clock,
            create_salt=True,
        )

    # -------------------------------------------------------------- analytics
    @cached_property
    def spend(self) -> SpendAdmin:
        stream = self.settings.archive_stream
        return SpendAdmin(FirehoseArchive(stream) if stream else None, clock=self.clock)

    @cached_property
    def reports(self) -> ReportAdmin:
        # Imported on first use, with the engines below: the reports' models and SQL builders are
        # a noticeable share of a cold start that most admin calls never need.
        from midstage.services.admin.reports import ReportAdmin

        return ReportAdmin(
            lambda: self.analytics_engine, cache_seconds=self.settings.analytics_cache_seconds, clock=self.clock
        )

    @cached_property
    def experiments(self) -> Experiments:
        """Experiments stored in the DataTable; their results read from the archive by the
        reports' engine (503 while it is not configured), exposures put on the archive stream."""
        from midstage.analytics_wiring import experiments_service

        return experiments_service(self.settings, lambda: self.analytics_engine, self.clock, origin_kind="api")

    @cached_property
    def analytics_engine(self) -> Engine:
        """The engine the reports run on, made on the first report that needs it; refused (503)
        while its settings are missing, so a stack without an archive still serves the rest."""
        from midstage.analytics_wiring import analytics_engine

        return analytics_engine(self.settings)
