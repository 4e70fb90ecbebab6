"""Campaign runs: Scheduler starts a run, parallel workers resolve the audience and queue its
messages at the campaign's rate, the deliver function applies every guard.

A run is named by its schedule occurrence, so a schedule that fires twice starts it once. Its
profiles are split into parts (slices of a parallel scan); a part is held by one worker at a
time through a lease and checkpointed page by page (cursor and counts, moved only from the
sequence number read). A worker that crashes is replaced by the queue's redelivery, which
resumes from the last checkpoint: a page queued twice is harmless, because every message's id
is (campaign, run, person) and the ledger sends an id once; a page is counted once, because
only one checkpoint can move past it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from midstage import keys
from midstage.errors import Conflict
from midstage.logic.archive import records
from midstage.logic.campaign_experiments import Deal, deal_for
from midstage.logic.campaigns import attribute, blocked_counter, pace, plan_recipient, run_id_for, share_of_rate
from midstage.logic.delivery import Outcome, is_hold
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.archive import ArchiveRecord
from midstage.models.campaigns import Campaign
from midstage.models.messages import CampaignPart
from midstage.models.messaging import MessageRequest
from midstage.models.profile import Profile
from midstage.observability import logger
from midstage.services.campaign_experiments import ExperimentDocuments, running_experiment
from midstage.services.ports import ArchiveSink, CountsOnce, MessageSink, PartQueue, ProfilePages, Stale, Timers

PAGE_ITEMS = 500  # items read per scan page (profiles and everything else in the table)
LEASE_S = 300
# A worker re-queues its part to continue in a fresh invocation when less time than this is left.
RESERVE_S = 60.0


class CampaignDocuments(Protocol):
    def find_document(self, kind: str, doc_id: str, model: type[Campaign]) -> Campaign | None: ...
    def save_document(self, kind: str, document: Campaign) -> Campaign: ...


class Runs(Protocol):
    def create_run(self, campaign_id: str, run_id: str, doc: Mapping[str, Any], now: datetime) -> bool: ...
    def run(self, campaign_id: str, run_id: str) -> dict[str, Any] | None: ...
    def put_part(self, campaign_id: str, run_id: str, part: int, total: int, now: datetime) -> None: ...
    def part(self, campaign_id: str, run_id: str, part: int) -> dict[str, Any] | None: ...
    def parts(self, campaign_id: str, run_id: str) -> list[dict[str, Any]]: ...
    def claim_part(
        self, campaign_id: str, run_id: str, part: int, holder: str, now: datetime, lease_s: int
    ) -> bool: ...
    def checkpoint(
        self,
        campaign_id: str,
        run_id: str,
        part: int,
        *,
        seq: int,
        holder: str,
        cursor: Mapping[str, Any] | None,
        counts: Mapping[str, int],
        state: str,
        now: datetime,
        lease_s: int,
    ) -> None: ...
    def part_finished(self, campaign_id: str, run_id: str, part: int) -> int: ...
    def reserve(self, campaign_id: str, run_id: str, wanted: int, limit: int, *, part: int, already: int) -> int: ...
    def set_part_state(
        self, campaign_id: str, run_id: str, part: int, state: str, only_from: Sequence[str]
    ) -> bool: ...


class Touches(Protocol):
    def add_many(self, touches: Sequence[tuple[str, datetime, str, str, str, str]]) -> None: ...
    def since(self, profile_id: str, since: datetime) -> list[dict[str, str]]: ...


def part_message(campaign_id: str, run_id: str, part: int, total: int) -> str:
    return CampaignPart(campaign_id=campaign_id, run_id=run_id, part=part, total=total).body()


# ------------------------------------------------------------------------------ starting a run
@dataclass
class Started:
    run_id: str
    created: bool
    parts_queued: int
    skipped: str = ""


class CampaignRunner:
    def __init__(
        self,
        config: CampaignDocuments,
        runs: Runs,
        parts_queue: PartQueue,
        *,
        parts: int,
        experiments: ExperimentDocuments | None = None,
    ) -> None:
        self.config = config
        self.runs = runs
        self.parts_queue = parts_queue
        self.parts = parts
        self.experiments = experiments

    def start(self, campaign_id: str, scheduled: datetime, now: datetime) -> Started:
        """Start the run for one schedule occurrence (again: a no-op, or a re-drive of parts that
        never got going)."""
        run_id = run_id_for(scheduled)
        campaign = self.config.find_document(keys.CAMPAIGN_PK, campaign_id, Campaign)
        if campaign is None:
            return Started(run_id, False, 0, "the campaign no longer exists")
        if campaign.status not in ("scheduled", "running"):
            return Started(run_id, False, 0, f"the campaign is {campaign.status}")
        doc: dict[str, Any] = {
            "campaign_id": campaign_id,
            "run_id": run_id,
            "version": campaign.version,
            "scheduled_at": iso(scheduled),
            "started_at": iso(now),
            "parts": self.parts,
        }
        if campaign.experiment is not None:
            experiment, why = running_experiment(self.experiments, campaign.experiment, now)
            if experiment is None:
                return Started(run_id, False, 0, why)
            doc.update(
                stage="test",
                experiment={"id": experiment.id, "phase": experiment.phase},
                awaits_winner=experiment.auto_winner is not None,
            )
        return self.launch(campaign, run_id, doc, now)

    def complete(self, campaign_id: str) -> None:
        """A running campaign ends with nothing more to send (a winner step that cannot follow its test)."""
        _set_status(self.config, campaign_id, "completed", only_from=("running",))

    def launch(self, campaign: Campaign, run_id: str, doc: Mapping[str, Any], now: datetime) -> Started:
        """Create the run (once), its parts, and queue the parts not yet taken up."""
        campaign_id = campaign.id
        created = self.runs.create_run(campaign_id, run_id, doc, now)
        run = self.runs.run(campaign_id, run_id)
        total = int(run["parts"]) if run else self.parts
        for part in range(total):
            self.runs.put_part(campaign_id, run_id, part, total, now)
        # Running before any part is queued: the last worker to finish moves the campaign on from
        # "running" only, so a run that ends before this write would leave it running for good.
        # Only from "scheduled": a pause (or cancel) made since the read above stands.
        if campaign.status == "scheduled":
            _set_status(self.config, campaign_id, "running", only_from=("scheduled",))
        # Parts not yet taken up (a first start, or a start that crashed half-way) are queued.
        # A part queued twice is harmless: its lease lets one worker hold it.
        waiting = [p["part"] for p in self.runs.parts(campaign_id, run_id) if p["state"] == "pending" and p["seq"] == 0]
        self.parts_queue.send_bodies([part_message(campaign_id, run_id, p, total) for p in waiting])
        return Started(run_id, created, len(waiting))


def _set_status(config: CampaignDocuments, campaign_id: str, status: str, only_from: tuple[str, ...] = ()) -> None:
    for _ in range(5):
        campaign = config.find_document(keys.CAMPAIGN_PK, campaign_id, Campaign)
        if campaign is None or campaign.status == status or (only_from and campaign.status not in only_from):
            return
        try:
            config.save_document(
                keys.CAMPAIGN_PK, campaign.model_copy(update={"status": status, "version": campaign.version + 1})
            )
            return
        except Conflict:
            continue


# ------------------------------------------------------------------------------ working a part
@dataclass
class PartOutcome:
    state: str  # done | paused | cancelled | continued | held_elsewhere | gone
    pages: int = 0
    counts: dict[str, int] | None = None


class CampaignWorker:
    def __init__(
        self,
        config: CampaignDocuments,
        runs: Runs,
        profiles: ProfilePages,
        messages: MessageSink,
        timers: Timers,
        touches: Touches,
        parts_queue: PartQueue,
        *,
        default_timezone: str = "UTC",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        archive: ArchiveSink | None = None,
        experiments: ExperimentDocuments | None = None,
        global_control: tuple[float, str] = (0.0, ""),
    ) -> None:
        self.archive = archive
        self.experiments = experiments
        self.global_control = global_control
        self.config = config
        self.runs = runs
        self.profiles = profiles
        self.messages = messages
        self.timers = timers
        self.touches = touches
        self.parts_queue = parts_queue
        self.default_timezone = default_timezone
        self.sleep = sleep
        self.clock = clock

    def work(
        self, campaign_id: str, run_id: str, part: int, total: int, now: Callable[[], datetime], time_left: float
    ) -> PartOutcome:
        holder = uuid.uuid4().hex
        deadline = self.clock() + time_left - RESERVE_S
        if not self.runs.claim_part(campaign_id, run_id, part, holder, now(), LEASE_S):
            # A part that was never created (a stale or forged message) is not held by anyone.
            found = self.runs.part(campaign_id, run_id, part)
            if found is None:
                return PartOutcome("gone")
            if found["state"] == "done":
                # Its worker may have died between the last checkpoint and counting it finished.
                self._finished(campaign_id, run_id, part, int(found["total"]))
                return PartOutcome("done")
            return PartOutcome("held_elsewhere")
        state = self.runs.part(campaign_id, run_id, part)
        run = self.runs.run(campaign_id, run_id)
        if state is None or run is None:
            return PartOutcome("gone")
        if int(state["total"]) != total:
            # The run's split, not the message's: another slicing would scan people of other parts.
            logger.warning("campaign part message names another split", part=part, total=total, stored=state["total"])
            total = int(state["total"])
        seq, cursor, counts = state["seq"], state["cursor"], dict(state["counts"])
        fired_at = parse_iso(run["scheduled_at"])
        started, queued_here, pages = self.clock(), 0, 0
        while True:
            campaign = self.config.find_document(keys.CAMPAIGN_PK, campaign_id, Campaign)
            if campaign is None or campaign.status in ("paused", "cancelled"):
                stop = "cancelled" if campaign is None or campaign.status == "cancelled" else "paused"
                self.runs.checkpoint(
                    campaign_id,
                    run_id,
                    part,
                    seq=seq,
                    holder=holder,
                    cursor=cursor,
                    counts=counts,
                    state=stop,
                    now=now(),
                    lease_s=LEASE_S,
                )
                return PartOutcome(stop, pages, counts)
            deal = self._deal(campaign, run)
            rate = share_of_rate(campaign.send_rate, total)
            # A page holds no more people than items read, so it paces out within RESERVE_S and the
            # deadline check between pages ends the invocation before its timeout cuts a page short
            # (a page is counted only at its checkpoint: cut short, every retry would start it over).
            page_items = max(1, min(PAGE_ITEMS, int(rate * RESERVE_S)))
            profiles, next_cursor = self.profiles.scan_page(part, total, cursor, page_items, started=fired_at)
            page = self._page(
                campaign, run_id, profiles, fired_at, now(), part=part, granted=counts.get("queued", 0), deal=deal
            )
            for chunk_start in range(0, len(page.now), 10):
                chunk = page.now[chunk_start : chunk_start + 10]
                # pace() waits at most MAX_PACE_WAIT at a time: ask again until the chunk is due.
                while (wait := pace(queued_here, started, rate, self.clock())) > 0:
                    self.sleep(wait)
                self.messages.send(chunk)
                queued_here += len(chunk)
            for at, request in page.later:
                self.timers.schedule(at, request.message_id, request.model_dump(mode="json"))
            if page.touches:
                self.touches.add_many(page.touches)
            if page.exposures and self.archive is not None:
                # Before the checkpoint: a page cut short here runs again, and its exposures
                # have the same record ids the second time.
                self.archive.put(page.exposures)
            for name, amount in page.counts.items():
                counts[name] = counts.get(name, 0) + amount
            finished = next_cursor is None
            try:
                self.runs.checkpoint(
                    campaign_id,
                    run_id,
                    part,
                    seq=seq,
                    holder=holder,
                    cursor=next_cursor,
                    counts=counts,
                    state="done" if finished else "running",
                    now=now(),
                    lease_s=LEASE_S,
                )
            except Stale:
                # Another holder took the part over (our lease ran out): it counts from its checkpoint.
                logger.warning("campaign part taken over", campaign=campaign_id, run=run_id, part=part)
                return PartOutcome("held_elsewhere", pages, counts)
            seq, cursor, pages = seq + 1, next_cursor, pages + 1
            if finished:
                self._finished(campaign_id, run_id, part, total)
                return PartOutcome("done", pages, counts)
            if self.clock() > deadline:
                # Continue in a fresh invocation; the lease is ours until it runs out, so the
                # continuation waits it out on a duplicate-safe claim (holder = the queue message).
                self.runs.set_part_state(campaign_id, run_id, part, "pending", only_from=("running",))
                self.parts_queue.send_bodies([part_message(campaign_id, run_id, part, total)])
                return PartOutcome("continued", pages, counts)

    @dataclass
    class _Page:
        now: list[MessageRequest]
        later: list[tuple[datetime, MessageRequest]]
        touches: list[tuple[str, datetime, str, str, str, str]]
        counts: dict[str, int]
        exposures: list[ArchiveRecord] = field(default_factory=list)

    def _page(
        self,
        campaign: Campaign,
        run_id: str,
        profiles: Sequence[Profile],
        fired_at: datetime,
        now: datetime,
        *,
        part: int = 0,
        granted: int = 0,
        deal: Deal | None = None,
    ) -> CampaignWorker._Page:
        """One page's decisions; `granted` is what the part's checkpointed pages took of max_messages."""
        page = CampaignWorker._Page([], [], [], {"scanned": len(profiles)})
        counts = page.counts
        sendable: list[tuple[datetime | None, MessageRequest, str | None]] = []
        for profile in profiles:
            recipient = plan_recipient(
                campaign, profile, run_id, fired_at, default_timezone=self.default_timezone, deal=deal
            )
            if recipient.decision == "not_in_audience":
                continue
            counts["targeted"] = counts.get("targeted", 0) + 1
            if recipient.decision == "held_out":
                counts["held_out"] = counts.get("held_out", 0) + 1
                page.touches.append((profile.id, now, "campaign", campaign.id, run_id, "held_out"))
                if self.archive is not None:
                    page.exposures.append(campaign_exposure(campaign, profile.id, "holdout", None, now))
                    if deal is not None and recipient.arm is not None:
                        page.exposures.append(campaign_exposure(campaign, profile.id, recipient.arm, None, now, deal))
            elif recipient.decision == "send" and recipient.request is not None:
                sendable.append((recipient.send_at, recipient.request, recipient.arm))
            else:
                counts[recipient.decision] = counts.get(recipient.decision, 0) + 1
        if campaign.max_messages is not None and sendable:
            grant = self.runs.reserve(
                campaign.id, run_id, len(sendable), campaign.max_messages, part=part, already=granted
            )
            if grant < len(sendable):
                counts["capped"] = counts.get("capped", 0) + len(sendable) - grant
                sendable = sendable[:grant]
        for send_at, request, arm in sendable:
            if self.archive is not None and (campaign.holdout_percent or campaign.variants or deal):
                variant = request.origin.step or "main"
                page.exposures.append(campaign_exposure(campaign, request.profile_id, variant, request.message_id, now))
                if deal is not None and deal.stage == "test" and arm is not None:
                    page.exposures.append(
                        campaign_exposure(campaign, request.profile_id, arm, request.message_id, now, deal)
                    )
            counts["queued"] = counts.get("queued", 0) + 1
            if send_at is not None and send_at > now:
                counts["scheduled"] = counts.get("scheduled", 0) + 1
                page.later.append((send_at, request))
            else:
                page.now.append(request)
        return page

    def _deal(self, campaign: Campaign, run: Mapping[str, Any]) -> Deal | None:
        """The experiment's deal for this run, from the phase the run recorded at its start."""
        named = run.get("experiment")
        if not named:
            return None
        experiment = self.experiments.find_experiment(str(named["id"])) if self.experiments else None
        phase = next((p for p in experiment.phases if p.number == int(named["phase"])), None) if experiment else None
        if experiment is None or phase is None:
            # Experiments are never deleted; a missing one is a wiring fault to retry, not a reason
            # to send the campaign unsplit.
            raise LookupError(f"run {run.get('run_id')} is split by experiment {named}, which cannot be read")
        share, salt = self.global_control
        return deal_for(
            campaign,
            experiment,
            phase,
            global_control_share=share,
            global_control_salt=salt,
            stage="winner" if run.get("stage") == "winner" else "test",
            winner=run.get("winner_arm"),
        )

    def _finished(self, campaign_id: str, run_id: str, part: int, total: int) -> None:
        if self.runs.part_finished(campaign_id, run_id, part) >= total:
            run = self.runs.run(campaign_id, run_id)
            if run is not None and run.get("awaits_winner"):
                return  # the campaign goes on to its winner's run, which completes it
            campaign = self.config.find_document(keys.CAMPAIGN_PK, campaign_id, Campaign)
            if campaign is not None:
                self._complete(campaign)

    def _complete(self, campaign: Campaign) -> None:
        if campaign.schedule.type != "recurring":
            _set_status(self.config, campaign.id, "completed", only_from=("running",))


def campaign_exposure(
    campaign: Campaign,
    profile_id: str,
    variant: str,
    message_id: str | None,
    now: datetime,
    deal: Deal | None = None,
) -> ArchiveRecord:
    """A person's place in a campaign that splits its audience (a holdout, variants): the
    experiment is the campaign, the variant the one sent or `holdout`; or, with `deal`, their
    arm in the experiment that splits the campaign, in the run's phase."""
    return records.exposure(
        experiment_id=deal.experiment_id if deal else campaign.id,
        variant=variant,
        profile_id=profile_id,
        at=now,
        archived_at=now,
        origin_kind="campaign",
        origin_id=campaign.id,
        message_id=message_id,
        phase=deal.phase if deal else None,
    )


# ------------------------------------------------------------------------------ outcomes and conversions
def delivery_counts(request: MessageRequest, status: str, reason: str) -> tuple[str, str, dict[str, int]] | None:
    """The counter a delivery outcome adds to, for campaign and journey messages:
    (origin kind, run, {name: 1}); None for other origins and non-final outcomes."""
    if request.origin.kind not in ("campaign", "journey"):
        return None
    if status not in ("sent", "blocked", "failed", "deferred", "cancelled"):
        return None
    if status == "deferred" and is_hold(reason):
        return None  # the sender's hold (a paused campaign or channel) repeats until it ends
    name = blocked_counter(reason) if status == "blocked" else status
    return request.origin.kind, run_of(request), {name: 1}


def run_of(request: MessageRequest) -> str:
    """The run a message belongs to: campaign keys are campaign:<id>:<run>:<person>."""
    if request.origin.kind == "campaign":
        parts = request.key.split(":")
        return parts[2] if len(parts) >= 4 else "unknown"
    return "all"


OUTCOME_MARKER_KEEP = timedelta(days=15)  # longer than a request can be redelivered (SQS keeps 14 days)


class SentTouches(Protocol):
    def add(self, profile_id: str, at: datetime, kind: str, origin_id: str, run: str, touch: str) -> None: ...


def count_outcome(
    request: MessageRequest, outcome: Outcome, counters: CountsOnce, touches: SentTouches, now: datetime
) -> bool:
    """Count a delivery's outcome once per message and outcome, the marker and the addition in
    one write. A redelivered request finds the ledger's outcome (a duplicate) and counts it,
    unless the attempt that decided it did: a crash between the ledger and the counter loses
    nothing. A campaign's send is noted as a touch (for conversions) by whichever attempt counts
    it. True when this call counted."""
    status, reason = outcome.recorded or (outcome.status, outcome.reason)
    counted = delivery_counts(request, status, reason)
    if counted is None:
        return False
    kind, run, counts = counted
    name = next(iter(counts))
    if outcome.was_deferred and status != "deferred":
        counts = {**counts, "deferred": -1}  # `deferred` is a gauge: this message is no longer waiting
    added = counters.add_once(
        kind,
        request.origin.id,
        run,
        request.message_id,
        counts,
        once=(f"outcome:{request.message_id}", name),
        now=now,
        keep=OUTCOME_MARKER_KEEP,
    )
    if added and kind == "campaign" and status == "sent":
        touches.add(request.profile_id, now, kind, request.origin.id, run, "sent")
    return added


FEEDBACK_COUNTERS = frozenset({"delivered", "opened", "clicked", "bounced", "complained", "unsubscribed"})


class StatusCounter:
    """Feedback on campaign and journey messages (delivered, opened, clicked, bounced...) added to
    their counters once per message and status: a second open, or a redelivered notification,
    adds nothing. Given to the ledger as its `on_status` hook."""

    def __init__(self, counters: CountsOnce) -> None:
        self.counters = counters

    def __call__(self, record: Mapping[str, Any], status: str, now: datetime) -> None:
        kind, _, origin_id = str(record.get("origin", "")).partition("#")
        if kind not in ("campaign", "journey") or status not in FEEDBACK_COUNTERS:
            return
        try:
            request = MessageRequest.model_validate_json(str(record.get("request", "")))
        except ValueError:
            return
        message_id = request.message_id
        self.counters.add_once(
            kind,
            origin_id,
            run_of(request),
            message_id,
            {status: 1},
            once=(f"status:{message_id}", status),
            now=now,
            keep=timedelta(days=400),
        )


class ConversionTracker:
    """Conversions and revenue attributed to the campaigns that touched a person (sent or held out)."""

    def __init__(self, campaigns: Callable[[], Sequence[Campaign]], touches: Touches, counters: CountsOnce):
        self.campaigns = campaigns
        self.touches = touches
        self.counters = counters

    def handle(self, profile_id: str, event: Mapping[str, Any], now: datetime) -> int:
        campaigns = [c for c in self.campaigns() if c.conversion is not None]
        name = event.get("event") if event.get("type") == "track" else None
        relevant = [c for c in campaigns if c.conversion is not None and c.conversion.event == name]
        if not relevant:
            return 0
        touches = [
            {"campaign_id": t["origin_id"], "run_id": t["run"], "at": t["at"], "kind": t["touch"]}
            for t in self.touches.since(profile_id, now - timedelta(days=31))
            if t["kind"] == "campaign"
        ]
        counted = 0
        keep = timedelta(days=400)
        for found in attribute(event, touches, {c.id: c for c in relevant}):
            run = f"{found.campaign_id}:{found.run_id}"
            # Each marker commits with its own addition: a crash between them loses neither.
            converted = self.counters.add_once(
                "campaign",
                found.campaign_id,
                found.run_id,
                profile_id,
                {found.converted_counter: 1},
                once=(f"conv:{run}", profile_id),
                now=now,
                keep=keep,
            )
            earned = bool(found.revenue) and self.counters.add_once(
                "campaign",
                found.campaign_id,
                found.run_id,
                profile_id,
                {found.revenue_counter: found.revenue},
                once=(f"rev:{run}", found.key),
                now=now,
                keep=keep,
            )
            counted += int(converted or earned)
        return counted
