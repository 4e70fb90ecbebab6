"""A campaign to a large audience in the local cloud, end to end and counted exactly.

Everyone is built through the tracking API (identify with email, time zone and the traits the
segments select on; "Consent Updated" for marketing email), partitioned by design so that each
person's outcome is known before the run: sent, blocked by each guard (no consent, suppressed,
frequency cap, no address), deferred by quiet hours, excluded by a segment, or held out (10 %,
computed per person with the product's own stable hash). Scheduler fires the campaign off the
manual clock; then the run's counters, the message ledger and SES's outbox are read back and
must agree with the design: the counters exactly, the outbox address by address. A
double-fired schedule, redelivered parts and redelivered message requests must change nothing;
when the clock passes the end of the quiet window, the deferred messages go out, once.

The wall-clock time of each phase is printed at the end of the module (profiles built, the
run's scan, delivery): the local cloud's throughput on the machine that ran it, shared with
whatever else that machine was doing (the load average is printed beside it).

Size. MIDSTAGE_E2E_CAMPAIGN_PEOPLE sets the population (the groups keep their shares): 2,000 by
default, which CI runs; the 10,000-person run and its figures are in docs/benchmarks.md. What it
costs is the time to build the profiles through the tracking API, which grows in proportion to
the population since the local cloud's DynamoDB engine writes a transaction's items in place and
queries only the partition asked for (infra/localcloud/dynamodb_engine.py).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.localcloud import outbox
from infra.localcloud.cloud import LocalCloud
from infra.localcloud.demo import bootstrap
from infra.localcloud.outbox import SentEmail
from midstage.adapters.profile_store import ProfileStore
from midstage.logic.campaigns import in_holdout, message_key, run_id_for
from midstage.models.messaging import message_id_for
from midstage.models.profile import Profile
from midstage.services.campaigns import part_message
from tests.e2e.conftest import Answer, Platform
from tests.e2e.test_rules_delivery import DAYTIME, zone_at_local_hour

PEOPLE = int(os.environ.get("MIDSTAGE_E2E_CAMPAIGN_PEOPLE", "2000"))
HOLDOUT_PERCENT = 10
EVENTS_PER_BATCH = 500  # two events a person: identify, then the consent
# One marketing email a week: a person sent one warm-up email is at the cap when the campaign comes.
FREQUENCY_CAPS = [{"channel": "email", "category": "marketing", "limit": 1, "days": 7}]
# Local time now in [06:00, 07:00): inside the 21:00-08:00 quiet window for the whole module,
# and its end at most two hours of clock away.
NIGHT = range(6, 7)
PHASE_TIMEOUT_S = 900.0 + PEOPLE / 2
pytestmark = pytest.mark.timeout(int(3 * PHASE_TIMEOUT_S))

# Each person's group, by their index modulo 100: shares of the population.
GROUP_SHARES = (
    ("excluded", 3),  # in the audience and in the excluded segment: not targeted
    ("no_consent", 3),  # no marketing consent recorded (opt-in by default)
    ("suppressed", 2),  # the address is on the suppression list
    ("night", 3),  # it is night where they live: deferred to the end of quiet hours
    ("capped", 2),  # sent a marketing email already: at the frequency cap
    ("no_address", 2),  # no email address at all
)
GROUP_OF_SLOT = [name for name, share in GROUP_SHARES for _ in range(share)]
# The guard that blocks each blocked group, as the ledger's reason code names it.
BLOCKED_BY = {
    "no_consent": "no_consent",
    "suppressed": "suppressed",
    "capped": "frequency_cap",
    "no_address": "no_address",
}


def group_for(index: int) -> str:
    slot = index % 100
    return GROUP_OF_SLOT[slot] if slot < len(GROUP_OF_SLOT) else "day"


@dataclass
class Person:
    index: int
    user_id: str
    email: str | None
    group: str
    zone: str
    profile_id: str = ""

    @property
    def ref(self) -> str:
        return f"user_id:{self.user_id}"


@dataclass
class Figures:
    """Wall-clock seconds of each phase, and what the phase handled."""

    rows: list[tuple[str, float, int, str]] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)

    def add(self, phase: str, seconds: float, items: int, unit: str) -> None:
        self.rows.append((phase, seconds, items, unit))

    def lines(self) -> list[str]:
        shown = [f"campaign to {PEOPLE:,} people, load average {_load()}"]
        for phase, seconds, items, unit in self.rows:
            rate = f"{items / seconds:,.1f} {unit}/s" if seconds > 0 and items else ""
            shown.append(f"  {phase:<50} {seconds:8.1f} s  {items:>7,} {unit:<9} {rate}")
        if self.retries:
            shown.append(f"  retried after a 5xx or a timeout: {dict(self.retries)}")
        return shown


def _load() -> str:
    try:
        return " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


class Timer:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def seconds(self) -> float:
        return time.monotonic() - self.started


# ------------------------------------------------------------------------------ the platform
class Api:
    """The platform's HTTP API, retrying what a client may safely retry: 5xx answers and
    timeouts of requests that are idempotent by design (events carry messageIds, sends an
    idempotency key, the rest are PUTs and GETs). Retries are counted, not hidden."""

    def __init__(self, platform: Platform, figures: Figures) -> None:
        self.platform = platform
        self.figures = figures

    def _retrying(self, what: str, call: Callable[[], Answer], attempts: int = 6) -> Answer:
        last = ""
        for attempt in range(attempts):
            try:
                answer = call()
            except (TimeoutError, urllib.error.URLError, ConnectionError) as error:
                last = repr(error)
            else:
                if answer.status < 500:
                    return answer
                last = f"{answer.status} {answer.body}"
            self.figures.retries[what] += 1
            time.sleep(1.0 + attempt)
        raise AssertionError(f"{what} failed {attempts} times, last: {last}")

    def track(self, path: str, body: Any) -> Answer:
        return self._retrying(path, lambda: self.platform.track(path, body))

    def admin(self, method: str, path: str, body: Any = None) -> Answer:
        route = f"{method} /v1/{path.split('/')[2]}" if path.count("/") >= 2 else f"{method} {path}"
        return self._retrying(route, lambda: self.platform.admin(method, path, body))


@dataclass
class World:
    cloud: LocalCloud
    api: Api
    figures: Figures
    tag: str
    people: list[Person]
    audience: str
    excluded: str
    template: str
    warm_up: str

    def group(self, name: str) -> list[Person]:
        return [p for p in self.people if p.group == name]


@pytest.fixture(scope="module")
def outbox_holding_every_email() -> Iterator[None]:
    """The outbox keeps a window of emails (outbox.KEPT_MESSAGES); the tests read every email the
    campaign sent back from SES, so the window holds them all (warm-ups, the run, the deferred)."""
    kept = outbox.KEPT_MESSAGES
    outbox.KEPT_MESSAGES = max(kept, 2 * PEOPLE)
    yield
    outbox.KEPT_MESSAGES = kept


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, outbox_holding_every_email: None) -> Iterator[World]:
    parameters = {
        "ConfigCacheSeconds": "0",
        "FrequencyCaps": json.dumps(FREQUENCY_CAPS, separators=(",", ":")),
        # Its own stage and stack: names apart from other clouds this process may run.
        "Stage": "camp10k",
    }
    figures = Figures()
    clock = Timer()
    with LocalCloud(
        manual_clock=True, stack_name="midstage-camp10k", parameters=parameters, region="us-west-2"
    ) as cloud:
        source, admin_key = bootstrap(cloud, echo=False)
        # The template's rate schedules fire first at the clock's start: let them, while the table
        # is empty, so that the later advances fire only what falls due after.
        cloud.clock.advance(0)
        cloud.wait_idle(timeout=PHASE_TIMEOUT_S)
        figures.add("local cloud started", clock.seconds(), 0, "")
        tag = uuid.uuid4().hex[:8]
        day, night = zone_at_local_hour(DAYTIME), zone_at_local_hour(NIGHT)
        people = [
            Person(
                index=i,
                user_id=f"c10k-{tag}-{i:05d}",
                email=None if group_for(i) == "no_address" else f"p{i:05d}-{tag}@example.org",
                group=group_for(i),
                zone=night if group_for(i) == "night" else day,
            )
            for i in range(PEOPLE)
        ]
        built = World(
            cloud,
            Api(Platform(cloud, source.write_key, source.id, admin_key), figures),
            figures,
            tag,
            people,
            audience=f"c10k-audience-{tag}",
            excluded=f"c10k-excluded-{tag}",
            template=f"c10k-offer-{tag}",
            warm_up=f"c10k-warm-up-{tag}",
        )
        try:
            yield built
        finally:
            # Printed past pytest's capture: these are the figures the module exists to measure.
            capture = request.config.pluginmanager.getplugin("capturemanager")
            with capture.global_and_fixture_disabled():
                print("\n" + "\n".join(figures.lines()))


def _template(api: Api, template_id: str, subject: str) -> None:
    body = {
        "id": template_id,
        "name": template_id,
        "channel": "email",
        "locales": {"en": {"subject": subject, "text": "Hello {{ person.first_name }}"}},
    }
    created = api.admin("POST", "/v1/templates", body)
    assert created.status == 201, created.body
    approved = api.admin("POST", f"/v1/templates/{template_id}/approve", {"version": 1})
    assert approved.status == 200, approved.body


def _events(person: Person, tag: str) -> list[dict[str, Any]]:
    traits: dict[str, Any] = {"first_name": f"P{person.index}", "cohort": tag, "group": person.group}
    if person.email is not None:
        traits["email"] = person.email
    events: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": person.user_id,
            "messageId": f"identify-{person.user_id}",
            "traits": traits,
            "context": {"timezone": person.zone},
        }
    ]
    if person.group != "no_consent":
        events.append(
            {
                "type": "track",
                "userId": person.user_id,
                "messageId": f"consent-{person.user_id}",
                "event": "Consent Updated",
                "properties": {"channel": "email", "purpose": "marketing", "granted": True},
            }
        )
    return events


def _stored_profiles(cloud: LocalCloud) -> list[Profile]:
    store = ProfileStore(cloud.outputs["DataTableName"], client=cloud.client("dynamodb"))
    found: list[Profile] = []
    cursor: dict[str, Any] | None = None
    while True:
        page, cursor = store.scan_page(0, 1, cursor, limit=1000)
        found.extend(page)
        if cursor is None:
            return found


def _in_parallel(work: Callable[[Any], Any], items: Sequence[Any], threads: int) -> list[Any]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(work, items))


@dataclass
class Run:
    campaign_id: str
    scheduled_time: str
    run_id: str
    stats: dict[str, Any]
    emails: list[SentEmail]
    double_fire_while_running: dict[str, Any]


def _stats(world: World, campaign_id: str) -> dict[str, Any]:
    answer = world.api.admin("GET", f"/v1/campaigns/{campaign_id}/stats")
    assert answer.status == 200, answer.body
    stats: dict[str, Any] = answer.body
    return stats


def _outcomes(totals: dict[str, Any]) -> int:
    return int(totals["sent"]) + sum(totals["blocked"].values()) + int(totals["failed"]) + int(totals["deferred"])


def _campaign_emails(world: World) -> list[SentEmail]:
    return [e for e in world.cloud.sent_emails() if e.subject == f"Offer {world.tag}"]


def _wait_for(probe: Callable[[], Any], what: str, timeout: float = PHASE_TIMEOUT_S, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last seen: {value!r}")


@pytest.fixture(scope="module")
def run(world: World) -> Run:
    api, cloud, figures = world.api, world.cloud, world.figures

    # Given the segments (before anyone exists: the profile updater keeps memberships on each write)
    for segment_id, condition in (
        (world.audience, {"path": "traits.cohort", "op": "eq", "value": world.tag}),
        (world.excluded, {"path": "traits.group", "op": "eq", "value": "excluded"}),
    ):
        created = api.admin("POST", "/v1/segments", {"id": segment_id, "name": segment_id, "condition": condition})
        assert created.status == 201, created.body
    _template(api, world.template, f"Offer {world.tag}")
    _template(api, world.warm_up, f"Warm-up {world.tag}")

    # and everyone, built through the tracking API
    clock = Timer()
    events = [event for person in world.people for event in _events(person, world.tag)]
    batches = [events[i : i + EVENTS_PER_BATCH] for i in range(0, len(events), EVENTS_PER_BATCH)]

    def post(batch: list[dict[str, Any]]) -> int:
        answer = api.track("/v1/batch", {"batch": batch})
        assert answer.status == 200 and not answer.body.get("rejected"), answer.body
        return int(answer.body["accepted"])

    accepted = sum(_in_parallel(post, batches, threads=4))
    assert accepted == len(events)
    figures.add("tracking API accepted the events", clock.seconds(), len(events), "events")
    cloud.wait_idle(timeout=PHASE_TIMEOUT_S)
    figures.add("profiles built (accepted to applied)", clock.seconds(), PEOPLE, "profiles")

    # Read back, as a campaign worker reads them (the API lists no profiles in bulk, and shows
    # neither consent nor memberships): one profile a person, with the traits, zone, consent
    # and segment memberships the events gave them, and its id, which the holdout hashes.
    clock = Timer()
    stored = _stored_profiles(cloud)
    by_user = {profile.identities["user_id"][0]: profile for profile in stored if profile.identities.get("user_id")}
    assert len(stored) == len(by_user) == PEOPLE
    for person in world.people:
        profile = by_user[person.user_id]
        person.profile_id = profile.id
        assert profile.traits.get("email") == person.email and profile.timezone == person.zone, profile
        consent = profile.consent.get("email:marketing", {}).get("granted", False)
        assert consent is (person.group != "no_consent"), (person, profile.consent)
        memberships = {world.audience, world.excluded} & set(profile.segments)
        assert memberships == ({world.audience, world.excluded} if person.group == "excluded" else {world.audience})
    # and the API shows the same people under the same ids
    for person in world.people[:: max(1, PEOPLE // 20)]:
        answer = api.admin("GET", f"/v1/profiles/{person.ref}")
        assert answer.status == 200 and answer.body["id"] == person.profile_id, answer.body
    figures.add("profiles read back (scan, as campaign workers do)", clock.seconds(), PEOPLE, "profiles")

    # and the suppressed and the capped, through the admin API
    clock = Timer()
    for person in world.group("suppressed"):
        put = api.admin("PUT", f"/v1/suppressions/email/{person.email}", {"reason": "manual", "scope": "all"})
        assert put.status == 200, put.body

    def warm_up(person: Person) -> None:
        body = {
            "profile": person.ref,
            "channels": ["email"],
            "template": world.warm_up,
            "category": "marketing",
            "idempotencyKey": f"warm-up-{person.user_id}",
        }
        answer = api.admin("POST", "/v1/messages", body)
        assert answer.status == 202, answer.body

    _in_parallel(warm_up, world.group("capped"), threads=4)
    cloud.wait_idle(timeout=PHASE_TIMEOUT_S)
    warmed = [e for e in cloud.sent_emails() if e.subject == f"Warm-up {world.tag}"]
    assert len(warmed) == len(world.group("capped")), len(warmed)
    figures.add("suppressions and warm-up sends", clock.seconds(), 0, "")

    # When a one-time campaign is scheduled a couple of minutes ahead
    campaign_id = f"c10k-{world.tag}"
    at = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    body = {
        "id": campaign_id,
        "name": "Ten thousand",
        "audience": {"segments": [world.audience], "exclude": [world.excluded]},
        "message": {"channels": ["email"], "template": world.template},
        "holdout_percent": HOLDOUT_PERCENT,
        "schedule": {"type": "once", "at": at.isoformat().replace("+00:00", "Z")},
        "send_rate": 10_000,  # the most a campaign may ask: the run goes as fast as the cloud does
    }
    created = api.admin("POST", "/v1/campaigns", body)
    assert created.status == 201, created.body
    scheduled = api.admin("POST", f"/v1/campaigns/{campaign_id}/schedule")
    assert scheduled.status == 200, scheduled.body
    [first_fire] = scheduled.body["schedule"]["next"]
    fire_at = datetime.fromisoformat(first_fire.replace("Z", "+00:00"))

    # and the clock passes its time: Scheduler starts the run
    clock = Timer()
    cloud.clock.advance(max(timedelta(0), fire_at - cloud.clock.now()) + timedelta(seconds=1))
    # A second start of the same occurrence while the first run is working: nothing new
    double = cloud.invoke("StartCampaignFunction", {"campaignId": campaign_id, "scheduledTime": first_fire})
    assert double.error is None, double

    def run_finished() -> dict[str, Any] | None:
        stats = _stats(world, campaign_id)
        runs = stats["runs"]
        return stats if runs and all(r["parts_done"] == r["parts"] for r in runs) else None

    stats = _wait_for(run_finished, "every part of the run to finish")
    figures.add("run: audience scanned and queued", clock.seconds(), int(stats["totals"]["scanned"]), "profiles")

    def delivered() -> dict[str, Any] | None:
        stats = _stats(world, campaign_id)
        return stats if _outcomes(stats["totals"]) >= int(stats["totals"]["queued"]) else None

    _wait_for(delivered, "an outcome for every queued message")
    cloud.wait_idle(timeout=PHASE_TIMEOUT_S)
    stats = _stats(world, campaign_id)
    figures.add(
        "delivery: fired to an outcome for every message", clock.seconds(), int(stats["totals"]["queued"]), "messages"
    )
    return Run(campaign_id, first_fire, run_id_for(fire_at), stats, _campaign_emails(world), double.payload)


# ------------------------------------------------------------------------------ expectations
@dataclass
class Expected:
    targeted: list[Person]
    held_out: list[Person]
    by_group: dict[str, list[Person]]  # targeted and not held out


def expected(world: World, campaign_id: str) -> Expected:
    targeted = [p for p in world.people if p.group != "excluded"]
    held = [p for p in targeted if in_holdout(campaign_id, p.profile_id, HOLDOUT_PERCENT)]
    held_ids = {p.index for p in held}
    by_group: dict[str, list[Person]] = {name: [] for name, _ in (*GROUP_SHARES, ("day", 0))}
    for person in targeted:
        if person.index not in held_ids:
            by_group[person.group].append(person)
    return Expected(targeted, held, by_group)


def _recipients(emails: Sequence[SentEmail]) -> Counter[str]:
    return Counter(address for email in emails for address in email.to)


def _message_id(run: Run, person: Person) -> str:
    return message_id_for(message_key(run.campaign_id, run.run_id, person.profile_id))


# ------------------------------------------------------------------------------ the run
def test_every_person_is_counted_once_under_the_outcome_designed_for_them(world: World, run: Run) -> None:
    want = expected(world, run.campaign_id)
    [only_run] = run.stats["runs"]
    totals = run.stats["totals"]
    assert only_run["run_id"] == run.run_id
    assert totals["scanned"] == PEOPLE
    assert totals["targeted"] == len(want.targeted) == PEOPLE - len(world.group("excluded"))
    assert totals["held_out"] == len(want.held_out)
    assert totals["queued"] == len(want.targeted) - len(want.held_out)
    assert totals["sent"] == len(want.by_group["day"])
    assert totals["deferred"] == len(want.by_group["night"])
    assert totals["blocked"] == {
        "no_consent": len(want.by_group["no_consent"]),
        "suppressed": len(want.by_group["suppressed"]),
        "frequency_cap": len(want.by_group["capped"]),
        "quiet_hours": 0,
        "no_address": len(want.by_group["no_address"]),
        "no_profile": 0,
        "offer_refused": 0,
        "global_control": 0,  # the stack holds no global control group (GlobalControlShare 0)
        "experiment_holdout": 0,  # no message names an experiment
        "other": 0,
    }
    assert (totals["failed"], totals["missed"], totals["capped"], totals["scheduled"]) == (0, 0, 0, 0)
    # The holdout is about a tenth of those targeted (a stable hash, not a coin flip per run)
    assert abs(len(want.held_out) - len(want.targeted) / 10) < len(want.targeted) / 20
    assert run.stats["status"] == "completed"


def test_ses_received_exactly_one_email_per_person_sent_and_none_for_anyone_else(world: World, run: Run) -> None:
    want = expected(world, run.campaign_id)
    received = _recipients(run.emails)
    duplicates = {address: n for address, n in received.items() if n > 1}
    assert duplicates == {}
    assert set(received) == {p.email for p in want.by_group["day"]}
    not_for = {p.email for p in world.people if p.email} - {p.email for p in want.by_group["day"]}
    assert not set(received) & not_for


def test_the_ledger_records_each_persons_guard_with_its_reason(world: World, run: Run) -> None:
    want = expected(world, run.campaign_id)
    statuses = {"day": "sent", "night": "deferred", **dict.fromkeys(BLOCKED_BY, "blocked")}
    for group, status in statuses.items():
        for person in want.by_group[group][:5]:
            answer = world.api.admin("GET", f"/v1/messages/{_message_id(run, person)}")
            assert answer.status == 200, (group, answer.body)
            record = answer.body
            assert record["status"] == status, (group, record)
            if status == "blocked":
                assert record["reason"].startswith(BLOCKED_BY[group] + ":"), (group, record)
            if status == "deferred":
                assert record["reason"].startswith("quiet_hours:"), record
    # and the held out and the excluded have no message at all
    for person in [*want.held_out[:5], *world.group("excluded")[:5]]:
        answer = world.api.admin("GET", f"/v1/messages/{_message_id(run, person)}")
        assert answer.status == 404, (person.group, answer.body)


# ------------------------------------------------------------------------------ twice is once
def test_a_double_fired_schedule_starts_no_new_run(world: World, run: Run) -> None:
    # While the run was working, a second start of the same occurrence created nothing
    assert run.double_fire_while_running["created"] is False, run.double_fire_while_running
    assert run.double_fire_while_running["runId"] == run.run_id
    before = _stats(world, run.campaign_id)

    # When the occurrence fires once more after the run
    again = world.cloud.invoke(
        "StartCampaignFunction", {"campaignId": run.campaign_id, "scheduledTime": run.scheduled_time}
    )
    world.cloud.wait_idle(timeout=PHASE_TIMEOUT_S)

    # Then nothing starts, and nothing is counted or sent again
    assert again.error is None and again.payload["created"] is False, again
    assert again.payload["partsQueued"] == 0
    after = _stats(world, run.campaign_id)
    assert [r["run_id"] for r in after["runs"]] == [run.run_id]
    assert after["totals"] == before["totals"]
    assert _recipients(_campaign_emails(world)) == _recipients(run.emails)


def test_redelivered_parts_and_message_requests_send_nothing_twice(world: World, run: Run) -> None:
    want = expected(world, run.campaign_id)
    before = _stats(world, run.campaign_id)
    emails_before = _recipients(_campaign_emails(world))
    sqs = world.cloud.client("sqs")
    total = int(before["runs"][0]["parts"])

    # When every part of the run is delivered to the workers again
    parts = [part_message(run.campaign_id, run.run_id, part, total) for part in range(total)]
    _send_bodies(sqs, world.cloud.outputs["CampaignQueueUrl"], parts)
    # and already handled message requests, as the ledger stored them, to the deliverers
    chosen = [*want.by_group["day"][:40], *want.by_group["night"][:10], *want.by_group["capped"][:10]]
    chosen += [*want.by_group["no_consent"][:10], *want.by_group["suppressed"][:10], *want.by_group["no_address"][:10]]
    requests = []
    for person in chosen:
        answer = world.api.admin("GET", f"/v1/messages/{_message_id(run, person)}")
        assert answer.status == 200, answer.body
        requests.append(json.dumps(answer.body["request"]))
    _send_bodies(sqs, world.cloud.outputs["DeliveryQueueUrl"], requests * 2)
    world.cloud.wait_idle(timeout=PHASE_TIMEOUT_S)

    # Then SES received nothing new and no counter moved
    assert _recipients(_campaign_emails(world)) == emails_before
    after = _stats(world, run.campaign_id)
    assert after["totals"] == before["totals"]
    assert after["runs"][0]["part_states"] == {"done": total}


def _send_bodies(sqs: Any, queue_url: str, bodies: Sequence[str]) -> None:
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + 10])]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        assert not answer.get("Failed"), answer


# ------------------------------------------------------------------------------ quiet hours end
@dataclass
class Release:
    before: dict[str, Any]
    after: dict[str, Any]
    emails: list[SentEmail]


@pytest.fixture(scope="module")
def released(world: World, run: Run) -> Release:
    """The clock moved past the end of the night group's quiet window: the timer sweep releases
    their deferred messages."""
    want = expected(world, run.campaign_id)
    before = _stats(world, run.campaign_id)
    records = [world.api.admin("GET", f"/v1/messages/{_message_id(run, p)}").body for p in want.by_group["night"]]
    assert all(r["status"] == "deferred" for r in records), records
    window_end = max(datetime.fromisoformat(str(r["notBefore"]).replace("Z", "+00:00")) for r in records)
    clock = Timer()
    world.cloud.clock.advance(max(timedelta(0), window_end - world.cloud.clock.now()) + timedelta(minutes=2))
    night = {p.email for p in want.by_group["night"]}

    def all_night_sent() -> bool:
        return night <= set(_recipients(_campaign_emails(world)))

    _wait_for(all_night_sent, "the deferred emails")
    world.cloud.wait_idle(timeout=PHASE_TIMEOUT_S)
    world.figures.add("quiet hours end: clock advanced, deferred sent", clock.seconds(), len(night), "messages")
    return Release(before, _stats(world, run.campaign_id), _campaign_emails(world))


def test_deferred_messages_go_out_once_when_the_clock_passes_the_quiet_window(
    world: World, run: Run, released: Release
) -> None:
    want = expected(world, run.campaign_id)
    received = _recipients(released.emails)
    assert {a: n for a, n in received.items() if n > 1} == {}
    assert set(received) == {p.email for p in [*want.by_group["day"], *want.by_group["night"]]}
    totals = released.after["totals"]
    assert totals["sent"] == len(want.by_group["day"]) + len(want.by_group["night"])
    assert totals["blocked"] == released.before["totals"]["blocked"]
    assert totals["queued"] == released.before["totals"]["queued"]
    for person in want.by_group["night"][:5]:
        record = world.api.admin("GET", f"/v1/messages/{_message_id(run, person)}").body
        assert record["status"] == "sent", record


def test_the_deferred_gauge_falls_to_zero_once_the_deferred_messages_are_sent(released: Release) -> None:
    assert released.before["totals"]["deferred"] > 0
    assert released.after["totals"]["deferred"] == 0
