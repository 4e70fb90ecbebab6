"""An experiment on a campaign, end to end in the local cloud, counted exactly.

A population built through the tracking API; a campaign with two variants split by an
experiment with a holdout arm and an auto-winner rule, in a stack whose global control group
holds 10 % of everyone. Scheduler fires the test off the manual clock: each person's place is
worked out beforehand with the product's own hashes (`deal_for`), and SES's outbox must agree
address by address (the holdout, the global control group and the people waiting for the winner
get nothing). Conversions are scripted with known true rates per arm (30 % and 80 %) through
the tracking API; the results route must report exactly the counts scripted, and the engine's
answer on them. When the clock passes the test window, the winner's schedule sends the winning
arm (or control, if the numbers fall short of the rule) to the people who waited, once, though
fired twice. Then a tampered split (extra exposures
for one arm, as a faulty sender would log) raises the SRM alert.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.demo import bootstrap
from midstage.adapters.archive_engines import S3Archive
from midstage.adapters.archive_stream import FirehoseArchive
from midstage.adapters.profile_store import ProfileStore
from midstage.logic.analytics.reports import Query
from midstage.logic.archive import records
from midstage.logic.campaign_experiments import deal_for
from midstage.models.campaigns import Campaign
from midstage.models.experiments import Experiment
from midstage.services.experiments import analyze, parse_analyze
from tests.e2e.conftest import Platform
from tests.e2e.test_rules_delivery import DAYTIME, wait_for, zone_at_local_hour

PEOPLE = 320
SHARE, SALT = 0.1, "e2e-programme"
TRUE_RATES = {"a": 0.30, "b": 0.80}
TIMEOUT_S = 300.0
pytestmark = pytest.mark.timeout(1200)


def converts(profile_id: str, arm: str) -> bool:
    draw = int.from_bytes(hashlib.sha256(f"convert:{profile_id}".encode()).digest()[:4], "big") / 2**32
    return draw < TRUE_RATES.get(arm, 0.0)


@dataclass
class World:
    cloud: LocalCloud
    api: Platform
    tag: str
    profiles: dict[str, str]  # profile id -> email
    users: dict[str, str]  # profile id -> user id

    def admin(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        answer = self.api.admin(method, path, body)
        assert answer.status in (200, 201, 202), (method, path, answer.status, answer.body)
        return answer.body  # type: ignore[no-any-return]

    def emails(self, subject: str) -> Counter[str]:
        return Counter(e.to[0] for e in self.cloud.sent_emails() if e.subject == subject)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    parameters = {
        "ConfigCacheSeconds": "0",
        "GlobalControlShare": str(SHARE),
        "GlobalControlSalt": SALT,
        "Stage": "exp",  # its own names, apart from other clouds this process may run
    }
    with LocalCloud(
        manual_clock=True, stack_name="midstage-exp", parameters=parameters, region="ca-central-1"
    ) as cloud:
        source, admin_key = bootstrap(cloud, echo=False)
        cloud.clock.advance(0)  # the template's rate schedules fire first, while the table is empty
        cloud.wait_idle(timeout=TIMEOUT_S)
        api = Platform(cloud, source.write_key, source.id, admin_key)
        tag = uuid.uuid4().hex[:8]
        built = World(cloud, api, tag, {}, {})
        built.admin(
            "POST",
            "/v1/segments",
            {"id": f"exp-{tag}", "name": "cohort", "condition": {"path": "traits.cohort", "op": "eq", "value": tag}},
        )
        for variant in ("a", "b"):
            template = {
                "id": f"exp-{variant}-{tag}",
                "name": variant,
                "channel": "email",
                "locales": {"en": {"subject": f"Subject {variant.upper()} {tag}", "text": "Hello"}},
            }
            built.admin("POST", "/v1/templates", template)
            built.admin("POST", f"/v1/templates/exp-{variant}-{tag}/approve", {"version": 1})
        zone = zone_at_local_hour(DAYTIME)
        events: list[dict[str, Any]] = []
        for n in range(PEOPLE):
            user = f"exp-{tag}-{n:04d}"
            traits = {"email": f"p{n:04d}-{tag}@example.org", "cohort": tag}
            events.append({"type": "identify", "userId": user, "traits": traits, "context": {"timezone": zone}})
            consent = {"channel": "email", "purpose": "marketing", "granted": True}
            events.append({"type": "track", "userId": user, "event": "Consent Updated", "properties": consent})
        for start in range(0, len(events), 240):
            answer = api.track("/v1/batch", {"batch": events[start : start + 240]})
            assert answer.status == 200 and not answer.body.get("rejected"), answer.body
        cloud.wait_idle(timeout=TIMEOUT_S)
        store = ProfileStore(cloud.outputs["DataTableName"], client=cloud.client("dynamodb"))
        page, cursor = store.scan_page(0, 1, None, limit=5000)
        assert cursor is None
        built.profiles = {p.id: str(p.traits["email"]) for p in page if p.traits.get("cohort") == tag}
        built.users = {p.id: p.identities["user_id"][0] for p in page if p.id in built.profiles}
        assert len(built.profiles) == PEOPLE
        yield built


def test_a_split_campaign_is_measured_exactly_and_its_winner_goes_to_the_rest_once(
    world: World, tmp_path: Path
) -> None:
    tag, cloud = world.tag, world.cloud
    campaign_id, experiment_id = f"exp-sale-{tag}", f"exp-subjects-{tag}"
    # Given an experiment on the campaign: two arms and a holdout, judged by chance to win after an hour
    world.admin(
        "POST",
        "/v1/experiments",
        {
            "id": experiment_id,
            "name": "Subject lines",
            "target": {"kind": "campaign", "id": campaign_id},
            "arms": [
                {"id": "a", "weight": 45},
                {"id": "b", "weight": 45},
                {"id": "holdout", "weight": 10, "holdout": True},
            ],
            "goal": "purchase",
            "metrics": [{"id": "purchase", "kind": "conversion", "event": "Order Completed", "window_hours": 24}],
            "auto_winner": {"rule": "chance_to_win", "test_percent": 50, "window_hours": 1, "min_units_per_arm": 8},
        },
    )
    at = (cloud.clock.now() + timedelta(minutes=10)).replace(second=0, microsecond=0)
    world.admin(
        "POST",
        "/v1/campaigns",
        {
            "id": campaign_id,
            "name": "Spring sale",
            "audience": {"segments": [f"exp-{tag}"]},
            "message": {"channels": ["email"], "template": f"exp-a-{tag}"},
            "variants": [{"id": "a", "percent": 50}, {"id": "b", "percent": 50, "template": f"exp-b-{tag}"}],
            "schedule": {"type": "once", "at": at.isoformat().replace("+00:00", "Z")},
            "send_rate": 10_000,
            "experiment": experiment_id,
        },
    )
    scheduled = world.admin("POST", f"/v1/campaigns/{campaign_id}/schedule")
    [fires] = scheduled["schedule"]["next"]
    at = datetime.fromisoformat(fires.replace("Z", "+00:00"))  # the campaign's time, or a minute on if it passed
    winner_at = datetime.fromisoformat(scheduled["schedule"]["winner"]["at"].replace("Z", "+00:00"))
    assert winner_at == at + timedelta(hours=1, minutes=20)

    # When the clock passes the campaign's time: the test goes out
    cloud.clock.advance(at - cloud.clock.now() + timedelta(seconds=1))

    def test_done() -> dict[str, Any] | None:
        stats = world.admin("GET", f"/v1/campaigns/{campaign_id}/stats")
        runs = stats["runs"]
        return stats if runs and all(r["parts_done"] == r["parts"] for r in runs) else None

    wait_for(test_done, "the test run", TIMEOUT_S)
    cloud.wait_idle(timeout=TIMEOUT_S)

    # Then each person got what the experiment's hash placed them in, and nothing else
    experiment = Experiment.model_validate(world.admin("GET", f"/v1/experiments/{experiment_id}"))
    campaign = Campaign.model_validate(world.admin("GET", f"/v1/campaigns/{campaign_id}"))
    assert experiment.status == "running" and experiment.phase == 1  # started by the campaign's run
    deal = deal_for(campaign, experiment, experiment.phases[-1], global_control_share=SHARE, global_control_salt=SALT)
    placed = {pid: deal.place(pid) for pid in world.profiles}
    kinds = Counter(p.kind for p in placed.values())
    assert min(kinds["global_control"], kinds["awaiting_winner"], kinds["holdout"]) > 0, kinds
    subjects = {"a": f"Subject A {tag}", "b": f"Subject B {tag}"}
    for arm, subject in subjects.items():
        expected = {world.profiles[pid] for pid, p in placed.items() if p.kind == "arm" and p.arm == arm}
        assert world.emails(subject) == Counter(expected), arm
    assert world.admin("GET", f"/v1/campaigns/{campaign_id}")["status"] == "running"  # waiting for its winner

    # When people convert at the scripted rates, through the tracking API
    exposed = {pid: p.arm for pid, p in placed.items() if p.kind in ("arm", "holdout")}
    buyers = [pid for pid, arm in exposed.items() if arm is not None and converts(pid, arm)]
    stamp = cloud.clock.now().isoformat().replace("+00:00", "Z")
    orders = [
        {
            "type": "track",
            "userId": world.users[pid],
            "event": "Order Completed",
            "properties": {"order_id": f"o-{pid}", "revenue": 30},
            "timestamp": stamp,
        }
        for pid in buyers
    ]
    answer = world.api.track("/v1/batch", {"batch": orders})
    assert answer.status == 200 and not answer.body.get("rejected"), answer.body
    cloud.clock.advance(timedelta(minutes=1))
    cloud.wait_idle(timeout=TIMEOUT_S)

    # Then the results report exactly the exposures and conversions scripted, and the engine's answer on them
    results = world.admin("GET", f"/v1/experiments/{experiment_id}/results")
    units = Counter(exposed.values())
    assert {arm["id"]: arm["units"] for arm in results["arms"]} == {
        "a": units["a"],
        "b": units["b"],
        "holdout": units["holdout"],
    }
    assert results["multiple_exposures"] == 0 and not results["srm"]["alert"]
    bought = Counter(exposed[pid] for pid in buyers)
    [goal] = [m for m in results["metrics"] if m["metric"] == "purchase"]
    means = {s["id"]: s["mean"] for s in [goal["control"], *goal["arms"]]}
    for arm in ("a", "b", "holdout"):
        assert means[arm] == pytest.approx(bought[arm] / units[arm], abs=1e-12), arm
    request = parse_analyze(
        {
            "metric_type": "proportion",
            "engine": "bayesian",
            "weights": [0.45, 0.45, 0.10],
            "variants": [
                {"id": arm, "n": units[arm], "sum": bought[arm], "sum_squares": bought[arm]}
                for arm in ("a", "b", "holdout")
            ],
        }
    )
    by_engine = {answer.id: answer for answer in analyze(request).variants}
    [served_b] = [v for v in goal["bayesian"] if v["id"] == "b"]
    assert served_b["chance_to_win"] == pytest.approx(by_engine["b"].chance_to_win, abs=1e-9)
    # The rule's answer on these numbers: b, whose true rate is far above a's, almost surely wins;
    # if chance left it below the threshold, control is what the rule sends, and the test follows.
    winner = "b" if served_b["chance_to_win"] >= 0.95 else "a"
    print(f"units {dict(units)}, conversions {dict(bought)}, b's chance to win {served_b['chance_to_win']:.4f}")

    # When the clock passes the test window: the winner's schedule sends b to the people who waited
    cloud.clock.advance(winner_at - cloud.clock.now() + timedelta(seconds=1))

    def winner_done() -> dict[str, Any] | None:
        stats = world.admin("GET", f"/v1/campaigns/{campaign_id}/stats")
        runs = stats["runs"]
        return stats if len(runs) == 2 and all(r["parts_done"] == r["parts"] for r in runs) else None

    try:
        wait_for(winner_done, "the winner's run", TIMEOUT_S)
    except AssertionError as error:
        starts = [
            (r.started_at, r.event, r.payload, (r.error or {}).get("errorMessage"))
            for r in cloud.invocations("StartCampaignFunction")[-4:]
        ]
        phases = world.admin("GET", f"/v1/experiments/{experiment_id}")["phases"]
        raise AssertionError(
            f"{error}; clock {cloud.clock.now()}; phases {phases}; the runner's last invocations: {starts}"
        ) from None
    # and it fires again (a double fire): nothing new
    again = cloud.invoke(
        "StartCampaignFunction",
        {"campaignId": campaign_id, "scheduledTime": winner_at.isoformat().replace("+00:00", "Z"), "stage": "winner"},
    )
    assert again.error is None and again.payload["created"] is False, again
    cloud.wait_idle(timeout=TIMEOUT_S)

    decision = world.admin("GET", f"/v1/experiments/{experiment_id}/decision")
    assert (decision["action"], decision["arm"]) == ("send_winner" if winner == "b" else "send_control", winner)
    waited = {world.profiles[pid] for pid, p in placed.items() if p.kind == "awaiting_winner"}
    tested = {world.profiles[pid] for pid, p in placed.items() if p.kind == "arm" and p.arm == winner}
    assert world.emails(subjects[winner]) == Counter(waited | tested)  # each once
    assert world.admin("GET", f"/v1/campaigns/{campaign_id}")["status"] == "completed"

    # When a faulty sender logs extra exposures for one arm: the split no longer matches its weights
    stream = cloud.physical_name("ArchiveStream")
    # Within the phase, as its own exposures are: on the functions' clock, which the phase's start is read on.
    now = experiment.phases[-1].started_at + timedelta(seconds=1)
    forged = [
        records.exposure(
            experiment_id=experiment_id,
            variant="a",
            profile_id=f"forged-{n}",
            at=now,
            archived_at=now,
            origin_kind="campaign",
            origin_id=campaign_id,
            message_id=f"forged-{n}",
            phase=1,
        )
        for n in range(60)
    ]
    FirehoseArchive(stream, cloud.client("firehose")).put(forged)
    cloud.wait_idle(timeout=TIMEOUT_S)
    tampered = world.admin("GET", f"/v1/experiments/{experiment_id}/results")
    if not tampered["srm"]["alert"]:
        archive = S3Archive(cloud.physical_name("ArchiveBucket"), "archive/", tmp_path, client=cloud.client("s3"))
        sql = (
            "SELECT variant, COUNT(*) AS n, MIN(occurred_at) AS first, MAX(occurred_at) AS last FROM archive "  # noqa: S608
            f"WHERE kind = 'experiment_exposure' AND experiment_id = '{experiment_id}' GROUP BY variant"
        )
        rows = archive.run(
            Query("rows", sql, ("experiment_exposure",), at.date(), (at + timedelta(days=1)).date())
        ).records()
        raise AssertionError(f"{tampered['srm']}; arms {tampered['arms']}; archived {rows}; phases {experiment.phases}")
