"""A slice of a day under injected faults: what the architecture promises must still hold.

The local cloud's fault injector (infra/localcloud/faults.py) kills workers between two AWS
calls, fails and throttles the functions' AWS calls, hands queue messages over twice and fires
schedules twice, at rates at which every busy function fails several times. Through that, a
scripted day runs over HTTP as clients would drive it:

1. a few hundred people browse anonymously ("Product Viewed" under an anonymousId), half of them
   also identify on a second device (a second profile, with their userId and email);
2. everyone identifies with userId + the first anonymousId (for half, two profiles merge), and
   grants marketing email consent;
3. everyone signs up ("Signed Up": a rule sends a welcome email) and views two more products;
4. a campaign to everyone (a segment on a trait) is scheduled and the clock passes its time;
5. SES reports a delivery for every campaign email and an open for every other one (the
   template's event destination takes no SES opens: opens are the pixel's, so those do nothing).

A client retries a 5xx or a timeout with the same body (the same messageIds): an event counts as
acknowledged once the API answered 200 for it. Once the cloud is idle, the invariants are read
back: every acknowledged event applied exactly once (each person's event counts), no message sent
twice (SES's outbox against the ledger), every campaign counter equal to a recount from the
ledger, and faults of every kind injected. An invariant today's main does not always keep is
marked `xfail` with the gap it shows (not strict: whether the gap shows depends on where a kill
lands in a given run).

The figures (people, events, retries, faults per kind and function, wall time) are printed at the
end of the module; docs/benchmarks.md ("Under injected faults") records a run.
MIDSTAGE_E2E_FAULT_PEOPLE sets the population (50 by default: every domain event is one
asynchronous invocation of each of its consumers, and each kill costs a cold start, so a day's
wall time grows with people x rate; see docs/benchmarks.md).
"""

from __future__ import annotations

import os
import time
import urllib.error
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.demo import bootstrap
from infra.localcloud.faults import KINDS, Faults
from infra.localcloud.outbox import SentEmail
from midstage.adapters.profile_store import ProfileStore
from midstage.models.profile import Profile
from tests.e2e.conftest import Answer, Platform
from tests.e2e.test_rules_delivery import DAYTIME, zone_at_local_hour

PEOPLE = int(os.environ.get("MIDSTAGE_E2E_FAULT_PEOPLE", "50"))
# A benchmark-sized tier (about 20 minutes on two cores at 50 people), run by `make
# test-faults-day`; CI runs the injector's own properties (tests/e2e/localcloud/test_localcloud_faults.py).
if os.environ.get("MIDSTAGE_FAULT_DAY") != "1":
    pytest.skip("the day under injected faults is an optional tier: make test-faults-day", allow_module_level=True)
FAULTS = Faults(kill=0.1, aws_error=0.01, throttle=0.003, duplicate=0.1, schedule_twice=0.5, seed=7)
TAG = "fday"  # fixed, with the seed: the same workload meets the same faults where its inputs repeat
EVENTS_PER_BATCH = 20
PHASE_TIMEOUT_S = max(600.0, 5.0 * PEOPLE)
pytestmark = pytest.mark.timeout(int(6 * PHASE_TIMEOUT_S))


@dataclass
class Person:
    index: int
    user_id: str
    anonymous_id: str
    email: str
    second_device: bool  # identified on another device first: two profiles that merge
    profile_id: str = ""


@dataclass
class Figures:
    started: float = field(default_factory=time.monotonic)
    phases: list[tuple[str, float]] = field(default_factory=list)
    acknowledged: Counter[str] = field(default_factory=Counter)  # event name -> acknowledged events
    retries: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)  # queue -> messages redriven
    lines: list[str] = field(default_factory=list)

    def phase(self, name: str) -> None:
        self.phases.append((name, time.monotonic() - self.started))


class Client:
    """The API as a careful client uses it: 5xx answers and timeouts are retried with the same
    body (events keep their messageIds), and counted."""

    def __init__(self, platform: Platform, figures: Figures) -> None:
        self.platform = platform
        self.figures = figures

    def _retrying(self, what: str, call: Callable[[], Answer], attempts: int = 10) -> Answer:
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
            time.sleep(0.5 * (attempt + 1))
        raise AssertionError(f"{what} failed {attempts} times, last: {last}")

    def batch(self, events: list[dict[str, Any]]) -> None:
        answer = self._retrying("POST /v1/batch", lambda: self.platform.track("/v1/batch", {"batch": events}))
        assert answer.status == 200 and not answer.body.get("rejected"), answer.body
        for event in events:
            self.figures.acknowledged[event.get("event") or event["type"]] += 1

    def admin(self, method: str, path: str, body: Any = None) -> Answer:
        route = f"{method} /v1/{path.split('/')[2]}"
        return self._retrying(route, lambda: self.platform.admin(method, path, body))

    def create(self, path: str, body: dict[str, Any]) -> None:
        """A create retried after a 5xx may find its first attempt done: 409 is success then."""
        answer = self.admin("POST", path, body)
        assert answer.status in (200, 201, 409), answer.body


@dataclass
class Day:
    cloud: LocalCloud
    client: Client
    figures: Figures
    people: list[Person]
    rule_id: str
    campaign_id: str
    welcome_subject: str
    offer_subject: str
    campaign_stats: dict[str, Any] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)  # provider ids of the campaign emails reported opened
    skipped: dict[str, list[Any]] = field(default_factory=dict)  # dead letters a redrive leaves by hand

    def emails(self, subject: str) -> list[SentEmail]:
        return [email for email in self.cloud.sent_emails() if email.subject == subject]


def _in_parallel(work: Callable[[Any], Any], items: list[Any], threads: int = 4) -> list[Any]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(work, items))


def _send(client: Client, events: list[dict[str, Any]]) -> None:
    batches = [events[i : i + EVENTS_PER_BATCH] for i in range(0, len(events), EVENTS_PER_BATCH)]
    _in_parallel(client.batch, batches)


def _settle(day_cloud: LocalCloud) -> None:
    day_cloud.wait_idle(timeout=PHASE_TIMEOUT_S)


def _settle_and_redrive(day: Day) -> None:
    """Idle, then what an operator does after an incident: send every dead letter back where it
    came from (the consumers are idempotent) and wait again, until no dead letter is left.

    Under kills a message can fail on every receive, and an asynchronous event on every attempt
    (three, as Lambda makes): those land in dead-letter queues, as they would on AWS."""
    _settle(day.cloud)
    for _ in range(6):
        answer = day.client.admin("GET", "/v1/dead-letters")
        assert answer.status == 200, answer.body
        holding = [q["queue"] for q in answer.body["queues"] if q["messages"] and q["queue"] not in day.skipped]
        if not holding:
            return
        for queue in holding:
            redriven = day.client.admin("POST", f"/v1/dead-letters/{queue}/redrive", {"limit": 500})
            assert redriven.status == 200, redriven.body
            day.figures.dead_letters[queue] += int(redriven.body["redriven"])
            if redriven.body["skipped"]:  # a schedule's firing: replayed by hand, says the runbook
                day.skipped[queue] = list(redriven.body["skipped"])
        _settle(day.cloud)
    raise AssertionError(f"dead letters keep coming back: {dict(day.figures.dead_letters)}")


def _template(client: Client, template_id: str, subject: str) -> None:
    body = {
        "id": template_id,
        "name": template_id,
        "channel": "email",
        "locales": {"en": {"subject": subject, "text": "Hello {{ person.first_name }}"}},
    }
    client.create("/v1/templates", body)
    approved = client.admin("POST", f"/v1/templates/{template_id}/approve", {"version": 1})
    assert approved.status in (200, 409), approved.body


def _track(person: Person, name: str, n: int, *, anonymous: bool = False) -> dict[str, Any]:
    who = {"anonymousId": person.anonymous_id} if anonymous else {"userId": person.user_id}
    return {"type": "track", **who, "event": name, "messageId": f"{TAG}-{person.index}-{name}-{n}", "properties": {}}


def _stats(client: Client, campaign_id: str) -> dict[str, Any]:
    answer = client.admin("GET", f"/v1/campaigns/{campaign_id}/stats")
    assert answer.status == 200, answer.body
    stats: dict[str, Any] = answer.body
    return stats


def _wait_for(probe: Callable[[], Any], what: str, timeout: float = PHASE_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last seen: {value!r}")


@pytest.fixture(scope="module")
def day(request: pytest.FixtureRequest) -> Iterator[Day]:
    figures = Figures()
    parameters = {"ConfigCacheSeconds": "0", "Stage": "fday"}
    with LocalCloud(
        manual_clock=True, stack_name="midstage-fday", parameters=parameters, region="eu-west-1", faults=FAULTS
    ) as cloud:
        source, admin_key = bootstrap(cloud, echo=False)
        cloud.clock.advance(0)  # the rate schedules' first firing, at the clock's start
        _settle(cloud)
        client = Client(Platform(cloud, source.write_key, source.id, admin_key), figures)
        zone = zone_at_local_hour(DAYTIME)
        people = [
            Person(i, f"{TAG}-user-{i:04d}", f"{TAG}-anon-{i:04d}", f"{TAG}{i:04d}@example.org", i % 2 == 1)
            for i in range(PEOPLE)
        ]
        built = Day(
            cloud,
            client,
            figures,
            people,
            rule_id=f"{TAG}-welcome",
            campaign_id=f"{TAG}-offer",
            welcome_subject=f"Welcome {TAG}",
            offer_subject=f"Offer {TAG}",
        )
        try:
            _run_the_day(built, zone)
            yield built
        finally:
            counts = cloud.faults.counts()
            figures.lines = [
                f"a day under faults ({FAULTS.describe()}): {PEOPLE} people, "
                f"{sum(figures.acknowledged.values())} events acknowledged {dict(figures.acknowledged)}",
                f"  client retries after a 5xx or timeout: {dict(figures.retries)}",
                f"  dead letters redriven: {dict(figures.dead_letters)}, left by the redrive: {built.skipped}",
                *(f"  {kind:<15} {sum(counts[kind].values()):>5}  {counts[kind]}" for kind in KINDS),
                *(f"  {name:<45} at {seconds:7.1f} s" for name, seconds in figures.phases),
            ]
            capture = request.config.pluginmanager.getplugin("capturemanager")
            with capture.global_and_fixture_disabled():
                print("\n" + "\n".join(figures.lines))


def _run_the_day(day: Day, zone: str) -> None:
    client, cloud, figures, people = day.client, day.cloud, day.figures, day.people
    # Given the segment, templates and the welcome rule
    client.create(
        "/v1/segments",
        {
            "id": f"{TAG}-all",
            "name": "the day's people",
            "condition": {"path": "traits.cohort", "op": "eq", "value": TAG},
        },
    )
    _template(client, f"{TAG}-welcome", day.welcome_subject)
    _template(client, f"{TAG}-offer", day.offer_subject)
    rule = {
        "id": day.rule_id,
        "name": day.rule_id,
        "trigger": {"type": "event", "event": "Signed Up"},
        "actions": [{"type": "send", "channels": ["email"], "template": f"{TAG}-welcome"}],
    }
    client.create("/v1/rules", rule)
    figures.phase("configured")

    # 1. anonymous browsing, and a second device for half of the people
    events: list[dict[str, Any]] = []
    for person in people:
        events += [_track(person, "Product Viewed", n, anonymous=True) for n in (1, 2)]
        if person.second_device:
            events.append(
                {
                    "type": "identify",
                    "userId": person.user_id,
                    "anonymousId": f"{TAG}-device2-{person.index:04d}",
                    "messageId": f"{TAG}-{person.index}-identify-device2",
                    "traits": {"email": person.email},
                }
            )
    _send(client, events)
    _settle_and_redrive(day)
    figures.phase("1. anonymous browsing applied")

    # 2. everyone identifies with the first anonymousId (two profiles merge for half) and consents
    events = []
    for person in people:
        traits = {"email": person.email, "first_name": f"P{person.index}", "cohort": TAG}
        events.append(
            {
                "type": "identify",
                "userId": person.user_id,
                "anonymousId": person.anonymous_id,
                "messageId": f"{TAG}-{person.index}-identify",
                "traits": traits,
                "context": {"timezone": zone},
            }
        )
        consent = {"channel": "email", "purpose": "marketing", "granted": True}
        events.append({**_track(person, "Consent Updated", 1), "properties": consent})
    _send(client, events)
    _settle_and_redrive(day)
    figures.phase("2. identifies and merges applied")

    # 3. sign-ups (the welcome rule) and more browsing
    events = []
    for person in people:
        events += [_track(person, "Signed Up", 1), *(_track(person, "Product Viewed", n) for n in (3, 4))]
    _send(client, events)
    _settle_and_redrive(day)
    figures.phase("3. sign-ups applied, welcome emails sent")

    # 4. a campaign to everyone, fired by the clock
    at = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    campaign = {
        "id": day.campaign_id,
        "name": "offer",
        "audience": {"segments": [f"{TAG}-all"]},
        "message": {"channels": ["email"], "template": f"{TAG}-offer"},
        "schedule": {"type": "once", "at": at.isoformat().replace("+00:00", "Z")},
        "send_rate": 10_000,
    }
    client.create("/v1/campaigns", campaign)
    scheduled = client.admin("POST", f"/v1/campaigns/{day.campaign_id}/schedule")
    assert scheduled.status in (200, 409), scheduled.body
    cloud.clock.advance(max(timedelta(0), at - cloud.clock.now()) + timedelta(seconds=1))
    # Idle is the end: under kills a part can stay "running" for good, so the run's own state
    # cannot say when it is over (see the invariants).
    _wait_for(lambda: _stats(client, day.campaign_id)["runs"], "the campaign's run to start")
    _settle_and_redrive(day)
    figures.phase("4. campaign sent")

    # 5. SES reports a delivery for every campaign email and an open for every other one
    offers = day.emails(day.offer_subject)
    for n, email in enumerate(offers):
        cloud.simulate_ses_event("Delivery", email.message_id)
        if n % 2 == 0:
            cloud.simulate_ses_event("Open", email.message_id)
            day.opened.add(email.message_id)
    _settle_and_redrive(day)
    figures.phase("5. feedback applied")
    day.campaign_stats = _stats(client, day.campaign_id)


def _stored_profiles(cloud: LocalCloud) -> list[Profile]:
    store = ProfileStore(cloud.outputs["DataTableName"], client=cloud.client("dynamodb"))
    found: list[Profile] = []
    cursor: dict[str, Any] | None = None
    while True:
        page, cursor = store.scan_page(0, 1, cursor, limit=1000)
        found.extend(page)
        if cursor is None:
            return found


_profiles_cache: dict[int, dict[str, Profile]] = {}


def _profiles_by_user(day: Day) -> dict[str, Profile]:
    if id(day) not in _profiles_cache:
        live = [p for p in _stored_profiles(day.cloud) if p.merged_into is None]
        _profiles_cache[id(day)] = {p.identities["user_id"][0]: p for p in live if p.identities.get("user_id")}
    return _profiles_cache[id(day)]


def _ledger(day: Day, person: Person) -> list[dict[str, Any]]:
    answer = day.client.admin("GET", f"/v1/profiles/user_id:{person.user_id}/messages?limit=100")
    assert answer.status == 200, answer.body
    return answer.body["messages"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def ledgers(day: Day) -> dict[str, list[dict[str, Any]]]:
    """Every person's ledger records, read once through the admin API."""
    return dict(zip((p.user_id for p in day.people), _in_parallel(lambda p: _ledger(day, p), day.people), strict=True))


def _statuses(record: dict[str, Any]) -> set[str]:
    return {str(entry.get("status")) for entry in record.get("history", [])} | {str(record.get("status"))}


# ------------------------------------------------------------------------------ the invariants
def test_faults_of_every_kind_were_injected(day: Day) -> None:
    counts = day.cloud.faults.counts()
    assert {kind: sum(counts[kind].values()) > 0 for kind in KINDS} == dict.fromkeys(KINDS, True), counts
    # and workers of several functions were killed
    assert len(counts["kill"]) >= 3, counts["kill"]


def test_every_acknowledged_event_is_applied_exactly_once(day: Day) -> None:
    # Each person is one profile (the merges happened) holding each event they sent once
    profiles = _profiles_by_user(day)
    assert sorted(profiles) == sorted(p.user_id for p in day.people)
    wrong = {}
    for person in day.people:
        counts = profiles[person.user_id].event_counts
        seen = {name: counts.get(name, 0) for name in ("Product Viewed", "Signed Up", "Consent Updated")}
        if seen != {"Product Viewed": 4, "Signed Up": 1, "Consent Updated": 1}:
            wrong[person.user_id] = seen
    assert wrong == {}
    assert day.figures.acknowledged["Product Viewed"] == 4 * PEOPLE


def test_no_email_is_sent_twice(day: Day) -> None:
    for subject in (day.welcome_subject, day.offer_subject):
        received = Counter(address for email in day.emails(subject) for address in email.to)
        assert {address: n for address, n in received.items() if n > 1} == {}, subject


@pytest.mark.xfail(
    strict=False,
    reason="issue 18, no message sent twice: under kills SES accepted 51 welcome emails for the 50 the ledger "
    "records as sent (one SES message id in no ledger record; one email per address); not traced to a cause; "
    "since then a re-send after a call whose answer was lost (botocore retrying a timed-out SendEmail, a worker "
    "killed mid-call) is closed, and a kill in that window ends the message `failed` (outcome_unknown); "
    "not strict: it shows only when a kill lands in the window, which a run may miss",
)
def test_everyone_gets_one_welcome_email_and_ses_and_the_ledger_agree(
    day: Day, ledgers: dict[str, list[dict[str, Any]]]
) -> None:
    welcomes = day.emails(day.welcome_subject)
    assert sorted(address for email in welcomes for address in email.to) == sorted(p.email for p in day.people)
    sent_in_ledger = [
        record
        for records in ledgers.values()
        for record in records
        if record.get("origin") == f"rule#{day.rule_id}" and "sent" in _statuses(record)
    ]
    assert sorted(r["providerId"] for r in sent_in_ledger) == sorted(e.message_id for e in welcomes)


def _campaign_records(ledgers: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [r for rs in ledgers.values() for r in rs if str(r.get("origin", "")).startswith("campaign#")]


def test_every_campaign_email_ses_accepted_is_in_the_ledger_as_sent(
    day: Day, ledgers: dict[str, list[dict[str, Any]]]
) -> None:
    sent = [r for r in _campaign_records(ledgers) if "sent" in _statuses(r)]
    assert sorted(r["providerId"] for r in sent) == sorted(e.message_id for e in day.emails(day.offer_subject))


def _recount(day: Day, ledgers: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    records = _campaign_records(ledgers)
    return {status: sum(status in _statuses(r) for r in records) for status in ("sent", "delivered", "opened")}


def test_the_campaigns_send_counter_equals_a_recount_from_the_ledger(
    day: Day, ledgers: dict[str, list[dict[str, Any]]]
) -> None:
    totals = day.campaign_stats["totals"]
    assert totals["sent"] == _recount(day, ledgers)["sent"]
    assert totals["deferred"] == 0


def test_the_campaigns_feedback_counters_equal_a_recount_from_the_ledger(
    day: Day, ledgers: dict[str, list[dict[str, Any]]]
) -> None:
    # Opens are the open pixel's (the template's SES event destination takes no Open events), so
    # the simulated SES opens change nothing here: the delivered counter is the one checked.
    totals = day.campaign_stats["totals"]
    recount = _recount(day, ledgers)
    assert recount["delivered"] == len(day.emails(day.offer_subject))
    assert totals["delivered"] == recount["delivered"]


@pytest.mark.xfail(
    strict=False,
    reason="issue 18: under kills the campaign reached fewer people than its segment holds (first run: 47 "
    "of 50 targeted); not strict: it shows only when a kill lands in the window, which a run may miss",
)
def test_the_campaign_reaches_everyone_in_its_segment_once(day: Day) -> None:
    totals = day.campaign_stats["totals"]
    assert totals["targeted"] == PEOPLE
    received = sorted(address for email in day.emails(day.offer_subject) for address in email.to)
    assert received == sorted(p.email for p in day.people)


@pytest.mark.xfail(
    strict=False,
    reason="issue 18: a campaign part whose worker is killed can stay 'running' for good, so the run never "
    "completes (first run: 7 of 8 parts done, the cloud idle); not strict: a run may see no such kill",
)
def test_the_campaigns_run_completes(day: Day) -> None:
    [run] = day.campaign_stats["runs"]
    assert run["parts_done"] == run["parts"], run
    assert day.campaign_stats["status"] == "completed"
