"""Campaigns: definitions, their Scheduler schedules, state changes (schedule, pause, resume,
cancel) and each run's stats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from midstage import keys
from midstage.clock import Clock
from midstage.errors import QueueRefused, Unavailable, version_mismatch
from midstage.logic.campaign_experiments import experiment_issues, winner_time
from midstage.logic.campaigns import (
    CampaignStateError,
    SchedulerSpec,
    scheduler_spec,
    stats_view,
    transition,
    validate_campaign,
)
from midstage.logic.schedules import at_expression, occurrences
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.admin import Caller
from midstage.models.campaigns import Campaign, CampaignBody, CampaignStatus, Conversion
from midstage.models.experiments import Experiment
from midstage.models.requests import CampaignCreate
from midstage.services.admin.common import (
    OfferExists,
    add_counts,
    changed_by,
    check_new_id,
    refused,
    segments_of,
    template_ids,
    unknown_offers,
)
from midstage.services.admin.ports import DefinitionStore, PartQueue, RunControl, Schedules, Totals
from midstage.services.campaign_experiments import ExperimentDocuments
from midstage.services.campaigns import part_message

NEXT_FIRINGS = 5  # upcoming firings shown when a campaign is scheduled
# Counts a campaign worker checkpoints on each part (services/campaigns.py); the rest of a run's
# counters (sent, blocked, delivered, converted...) are sharded counters.
PART_COUNTERS = (
    "scanned",
    "targeted",
    "held_out",
    "missed",
    "capped",
    "queued",
    "scheduled",
    # a campaign split by an experiment (docs/experiments.md)
    "global_control",
    "awaiting_winner",
    "in_test",
)
RUN_EXPERIMENT_FIELDS = ("experiment", "stage", "winner_arm", "decision")  # a run split by an experiment
EDITABLE_STATUSES: tuple[CampaignStatus, ...] = ("draft", "scheduled", "paused")
ENDED_STATUSES: tuple[CampaignStatus, ...] = ("completed", "cancelled")


class CampaignAdmin:
    def __init__(
        self,
        config: DefinitionStore,
        runs: RunControl,
        counters: Totals,
        campaign_queue: PartQueue,
        schedules: Schedules,
        *,
        clock: Clock,
        offer_exists: OfferExists | None = None,
        experiments: ExperimentDocuments | None = None,
    ) -> None:
        self.experiments = experiments
        self.config = config
        self.runs = runs
        self.counters = counters
        self.campaign_queue = campaign_queue
        self.schedules = schedules
        self.clock = clock
        self.offer_exists = offer_exists

    def list_campaigns(self, status: str | None) -> dict[str, Any]:
        found = [c for c in self.config.documents(keys.CAMPAIGN_PK, Campaign) if status in (None, c.status)]
        return {"campaigns": [c.model_dump(mode="json") for c in sorted(found, key=lambda c: c.id)]}

    def _experiment(self, body: CampaignBody) -> Experiment | None:
        if body.experiment is None or self.experiments is None:
            return None
        return self.experiments.find_experiment(body.experiment)

    def _campaign_issues(self, body: CampaignBody, campaign_id: str) -> None:
        issues = validate_campaign(
            body,
            segments_known=set(segments_of(self.config)),
            templates_known=template_ids(self.config),
            now=self.clock(),
        )
        offer = body.message.offer
        issues += unknown_offers([(offer.id, "/message/offer/id")] if offer else [], self.offer_exists)
        issues += experiment_issues(campaign_id, body, self._experiment(body))
        if issues:
            raise refused("campaign", issues, code="invalid_campaign")

    def create_campaign(self, body: CampaignCreate, caller: Caller) -> dict[str, Any]:
        check_new_id(self.config, keys.CAMPAIGN_PK, Campaign, body.id, "/v1/campaigns")
        self._campaign_issues(body, body.id)
        now = iso(self.clock())
        campaign = Campaign(
            **body.model_dump(), version=1, status="draft", created_at=now, updated_at=now, updated_by=caller.key_id
        )
        return self.config.save_document(keys.CAMPAIGN_PK, campaign).model_dump(mode="json")

    def _campaign(self, campaign_id: str) -> Campaign:
        return self.config.get_document(keys.CAMPAIGN_PK, campaign_id, Campaign)

    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        return self._campaign(campaign_id).model_dump(mode="json")

    def replace_campaign(
        self, campaign_id: str, body: CampaignBody, if_match: int | None, caller: Caller
    ) -> dict[str, Any]:
        """A new version, while the campaign is a draft, scheduled or paused. A scheduled
        campaign's schedule follows the new definition at once; a paused one's when resumed."""
        current = self._campaign(campaign_id)
        if current.status not in EDITABLE_STATUSES:
            hint = "pause it first" if current.status == "running" else "copy it to send again"
            raise CampaignStateError(f"cannot change a {current.status} campaign: {hint}")
        version_mismatch("campaign", campaign_id, current.version, if_match)
        self._campaign_issues(body, campaign_id)
        campaign = Campaign(
            **body.model_dump(),
            id=campaign_id,
            version=current.version + 1,
            status=current.status,
            created_at=current.created_at,
            updated_at=iso(self.clock()),
            updated_by=caller.key_id,
        )
        if campaign.status == "scheduled":
            self._arm(campaign)
        return self.config.save_document(keys.CAMPAIGN_PK, campaign).model_dump(mode="json")

    def delete_campaign(self, campaign_id: str) -> None:
        """Stops what is still to happen (the schedule, parts not yet worked), then deletes the
        definition; runs, counters and versions stay for the record."""
        current = self._campaign(campaign_id)
        if current.status not in ENDED_STATUSES:
            self._stop_parts(campaign_id)
        self.schedules.delete(campaign_id)
        self.schedules.delete(campaign_id, "winner")
        self.config.delete_document(keys.CAMPAIGN_PK, campaign_id)

    def _with_status(self, campaign: Campaign, status: CampaignStatus, caller: Caller) -> Campaign:
        if status == campaign.status:
            return campaign
        moved = campaign.model_copy(
            update={"status": status, "version": campaign.version + 1, **changed_by(self.clock, caller)}
        )
        return self.config.save_document(keys.CAMPAIGN_PK, moved)

    def _arm(self, campaign: Campaign) -> dict[str, Any]:
        """Create (or replace) the Scheduler schedule that starts the campaign's runs."""
        now = self.clock()
        spec = scheduler_spec(campaign, now)
        name = self.schedules.put(
            campaign.id, spec.expression, spec.timezone, start=spec.start, end=spec.end, one_time=spec.one_time
        )
        view = _schedule_view(name, spec, now)
        if spec.moment is not None:
            winner = self._arm_winner(campaign, spec.moment)
            if winner is not None:
                view["winner"] = winner
        return view

    def _arm_winner(self, campaign: Campaign, test_at: datetime) -> dict[str, Any] | None:
        """An auto-winner's second schedule: the test window after the test (never in the past)."""
        experiment = self._experiment(campaign)
        at = winner_time(test_at, experiment) if experiment is not None else None
        if at is None:
            return None
        at = max(at, self.clock().astimezone(UTC).replace(microsecond=0) + timedelta(minutes=1))
        name = self.schedules.put(campaign.id, at_expression(at, "UTC"), "UTC", one_time=True, stage="winner")
        return {"name": name, "at": iso(at)}

    def schedule_campaign(self, campaign_id: str, caller: Caller) -> dict[str, Any]:
        """draft -> scheduled. The definition is checked again (a date may have passed, a template
        gone) and the schedule is created before the status changes, so a refusal leaves nothing."""
        current = self._campaign(campaign_id)
        status = transition(current.status, "schedule")
        self._campaign_issues(current, campaign_id)
        schedule = self._arm(current)
        return {"campaign": self._with_status(current, status, caller).model_dump(mode="json"), "schedule": schedule}

    def pause_campaign(self, campaign_id: str, caller: Caller) -> dict[str, Any]:
        """Workers stop at their next page and leave their part paused; a schedule firing while
        paused starts nothing."""
        current = self._campaign(campaign_id)
        status = transition(current.status, "pause")
        return {"campaign": self._with_status(current, status, caller).model_dump(mode="json")}

    def resume_campaign(self, campaign_id: str, caller: Caller) -> dict[str, Any]:
        """Back to running when its latest run was interrupted (its paused parts are queued
        again, under the same run id, so nobody gets a second message), else back on its
        schedule, which is created again (a one-time moment passed meanwhile fires a minute on)."""
        current = self._campaign(campaign_id)
        status = transition(current.status, "resume")
        latest = self._latest_run(campaign_id)
        parts = self.runs.parts(campaign_id, latest["run_id"]) if latest else []
        if status == "scheduled" and any(p["state"] not in ("done", "cancelled") for p in parts):
            status = "running"
        saved = self._with_status(current, status, caller)
        requeued: list[int] = []
        if saved.status == "running" and latest is not None:
            requeued = [p["part"] for p in parts if p["state"] == "paused"]
            bodies = [part_message(campaign_id, latest["run_id"], p, int(latest["parts"])) for p in requeued]
            try:
                self.campaign_queue.send_bodies(bodies)
            except QueueRefused as error:
                raise Unavailable("the paused parts could not be queued again; resume again to retry") from error
        schedule = None
        answer: dict[str, Any] = {"campaign": saved.model_dump(mode="json"), "requeued_parts": requeued}
        if saved.status == "scheduled" or (saved.status == "running" and saved.schedule.type == "recurring"):
            schedule = self._arm(saved)
        elif saved.status == "running" and latest is not None and latest.get("awaits_winner"):
            # The winner's schedule may have fired while paused (and started nothing): again.
            winner = self._arm_winner(saved, parse_iso(str(latest["scheduled_at"])))
            if winner is not None:
                answer["winner"] = winner
        return {**answer, "schedule": schedule}

    def cancel_campaign(self, campaign_id: str, caller: Caller) -> dict[str, Any]:
        """Ends the campaign for good: no more runs, and parts not yet worked never will be
        (workers busy on a part stop at their next page)."""
        current = self._campaign(campaign_id)
        status = transition(current.status, "cancel")
        saved = self._with_status(current, status, caller)
        deleted = self.schedules.delete(campaign_id)
        self.schedules.delete(campaign_id, "winner")
        cancelled = self._stop_parts(campaign_id)
        return {"campaign": saved.model_dump(mode="json"), "schedule_deleted": deleted, "cancelled_parts": cancelled}

    def _latest_run(self, campaign_id: str) -> dict[str, Any] | None:
        runs = self.runs.runs(campaign_id)
        return max(runs, key=lambda r: str(r["run_id"])) if runs else None

    def _stop_parts(self, campaign_id: str) -> int:
        stopped = 0
        for run in self.runs.runs(campaign_id):
            if int(run["parts_done"]) >= int(run["parts"]):
                continue
            for part in self.runs.parts(campaign_id, run["run_id"]):
                if part["state"] in ("pending", "paused") and self.runs.set_part_state(
                    campaign_id, run["run_id"], part["part"], "cancelled", only_from=("pending", "paused")
                ):
                    stopped += 1
        return stopped

    def campaign_stats(self, campaign_id: str) -> dict[str, Any]:
        """Each run's counters (what its workers decided, and what became of each message) and
        the totals over every run."""
        campaign = self._campaign(campaign_id)
        counted = self.counters.totals("campaign", campaign_id)
        totals: dict[str, Decimal] = {}
        runs: list[dict[str, Any]] = []
        for run in sorted(self.runs.runs(campaign_id), key=lambda r: str(r["run_id"])):
            run_id = str(run["run_id"])
            parts = self.runs.parts(campaign_id, run_id)
            counts = dict(counted.pop(run_id, {}))
            for part in parts:
                for name in PART_COUNTERS:
                    counts[name] = counts.get(name, Decimal(0)) + Decimal(part["counts"].get(name, 0))
            add_counts(totals, counts)
            runs.append(
                {
                    "run_id": run_id,
                    "scheduled_at": run.get("scheduled_at"),
                    "started_at": run.get("started_at"),
                    "parts": int(run["parts"]),
                    "parts_done": int(run["parts_done"]),
                    "part_states": dict(sorted(Counter(str(p["state"]) for p in parts).items())),
                    "stats": _run_stats(counts, campaign.conversion),
                    **{str(name): run[name] for name in RUN_EXPERIMENT_FIELDS if name in run},
                }
            )
        for leftover in counted.values():  # outcomes of messages whose run record is gone
            add_counts(totals, leftover)
        return {
            "campaignId": campaign_id,
            "status": campaign.status,
            "runs": runs,
            "totals": _run_stats(totals, campaign.conversion),
        }


def _schedule_view(name: str, spec: SchedulerSpec, now: datetime) -> dict[str, Any]:
    start = parse_iso(spec.start) if spec.start else None
    end = parse_iso(spec.end) if spec.end else None
    upcoming = occurrences(spec.expression, spec.timezone, now, NEXT_FIRINGS, start=start, end=end)
    return {
        "name": name,
        "expression": spec.expression,
        "timezone": spec.timezone,
        "start": spec.start,
        "end": spec.end,
        "one_time": spec.one_time,
        "next": [iso(moment) for moment in upcoming],
    }


def _run_stats(counts: Mapping[str, Decimal], conversion: Conversion | None) -> dict[str, Any]:
    return {
        **stats_view(counts, conversion=conversion),
        "scanned": int(counts.get("scanned", 0)),
        "scheduled": int(counts.get("scheduled", 0)),
        # a campaign split by an experiment: shown only where they happen
        **{name: int(counts[name]) for name in ("global_control", "awaiting_winner", "in_test") if counts.get(name)},
    }
