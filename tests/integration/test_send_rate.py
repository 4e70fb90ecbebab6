"""Pacing delivery to the SES account's send rate: the token bucket's counter items on moto's
DynamoDB, the rate read from SES's GetSendQuota (moto, answering the rate the test sets), and
deliverers racing on threads. What is measured is what the ledger recorded as each message's send
time, counted per second: deterministic under the bucket's rule, whatever the machine's speed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from infra.localcloud.fidelity import set_ses_send_rate
from midstage import keys
from midstage.adapters import aws
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.messaging_store import CapStore, MessageLedger, SuppressionStore
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.sending_state import SendRateBucket, SesSendRate
from midstage.adapters.timer_store import TimerStore
from midstage.logic import delivery as delivery_logic
from midstage.logic.delivery import PACED, SENT, Policy
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.messaging import MessageRequest, Origin, Template
from midstage.models.profile import Profile, WritePlan
from midstage.services.delivery import Ports, deliver
from tests.integration.conftest import Context, Stack
from tests.integration.test_campaign_runs import sqs_event
from tests.support.concurrency import race
from tests.support.fakes import ApprovedEmail, RecordingProvider

START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
RATE = 5  # SES's MaxSendRate, as GetSendQuota answers it here
BURST = 4 * RATE
TICK = timedelta(milliseconds=250)


def receipt(n: int) -> MessageRequest:
    return MessageRequest(
        key=f"api:receipts:{n}",
        origin=Origin(kind="api", id="receipts"),
        profile_id=f"p{n:02d}",
        channels=["email"],
        template={"email": "receipt"},
        category="transactional",
        requested_at=iso(START),
    )


@pytest.mark.parametrize("shard_rate", [500, 2], ids=["one-shard", "three-shards"])
def test_given_a_burst_of_four_times_the_send_rate_when_raced_then_no_second_sends_more_than_the_rate(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, shard_rate: int
) -> None:
    monkeypatch.setattr(delivery_logic, "SHARD_RATE", shard_rate)  # 2: the rate split over 3 counter items
    set_ses_send_rate(RATE)
    table, dynamodb = stack.output("DataTableName"), stack.clients.dynamodb()
    profiles = ProfileStore(table, client=dynamodb)
    for n in range(BURST):
        profiles.save(WritePlan(Profile(id=f"p{n:02d}", created_at=iso(START), traits={"email": f"p{n}@example.org"})))
    provider = RecordingProvider()
    rate = SesSendRate(aws.ses())
    ledger = MessageLedger(table, client=dynamodb)
    ports = Ports(
        ledger=ledger,
        profiles=profiles,
        suppressions=SuppressionStore(table, client=dynamodb),
        caps=CapStore(table, client=dynamodb),
        templates=ApprovedEmail(),
        timers=TimerStore(table, client=dynamodb),
        channels=provider,
        pacer=SendRateBucket(table, {"email": rate.rate}, client=dynamodb),
    )
    policy = Policy(caps=(), quiet_hours=None)
    pending = [receipt(n) for n in range(BURST)]

    # Every tick, each message still waiting is delivered again, all at once on their own threads
    # (what the queue does with a message given back); the time is the tick's, not the host's.
    now, ticks = START, 0
    while pending and ticks < 40:
        waiting, at = list(pending), now
        outcomes = race(len(waiting), lambda i: deliver(waiting[i], ports, policy, at).status)  # noqa: B023 - run at once
        assert set(outcomes) <= {SENT, PACED}
        pending = [request for request, status in zip(waiting, outcomes, strict=True) if status == PACED]
        now, ticks = now + TICK, ticks + 1

    assert pending == []
    records = ledger.many([receipt(n).message_id for n in range(BURST)])
    assert Counter(r["status"] for r in records) == Counter({SENT: BURST})
    assert sorted(provider.calls) == sorted(r["id"] for r in records)  # each sent once
    per_second = Counter(parse_iso(r["updatedAt"]).replace(microsecond=0) for r in records)
    assert per_second == Counter({START + timedelta(seconds=s): RATE for s in range(BURST // RATE)})
    # The counters say the same: each shard stayed within its limit, their sum within the rate.
    limits = delivery_logic.shard_limits(RATE)
    for second in range(int(START.timestamp()), int(START.timestamp()) + BURST // RATE):
        counts = []
        for shard, limit in enumerate(limits):
            item = dynamodb.get_item(
                TableName=table, Key={k: {"S": v} for k, v in keys.send_rate_key("email", second, shard).items()}
            )
            counts.append(int(item.get("Item", {}).get("n", {}).get("N", 0)))
            assert counts[-1] <= limit
        assert sum(counts) == RATE


def test_given_the_ses_quota_when_read_then_its_rate_is_cached_until_the_ttl_passes(stack: Stack) -> None:
    set_ses_send_rate(14.5)
    clock = [0.0]
    rate = SesSendRate(aws.ses(), ttl_seconds=300, monotonic=lambda: clock[0])
    assert rate.rate() == 14  # whole tokens a second
    set_ses_send_rate(40)  # the quota raised in SES
    clock[0] = 299.0
    assert rate.rate() == 14
    clock[0] = 300.0
    assert rate.rate() == 40


class Clock:
    """The deliver function's clock, moved only by its waiting for a token (when `moves`)."""

    def __init__(self, at: datetime, *, moves: bool) -> None:
        self.at, self.moves, self.slept = at, moves, 0.0

    def __call__(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        if self.moves:
            self.at += timedelta(seconds=seconds)


@pytest.mark.parametrize("moves", [True, False], ids=["waits-in-process", "given-back-to-the-queue"])
def test_given_a_batch_over_the_send_rate_when_the_deliver_function_handles_it_then_none_fails_or_goes_twice(
    stack: Stack, moves: bool
) -> None:
    set_ses_send_rate(1)
    table, dynamodb = stack.output("DataTableName"), stack.clients.dynamodb()
    stack.clients.sesv2().create_email_identity(EmailIdentity="example.com")
    config_table = stack.output("ConfigTableName")
    receipt_template = Template(
        id="receipt",
        name="Receipt",
        channel="email",
        locales={"en": {"subject": "Hi", "text": "Hi"}},
        status="approved",
    )
    ConfigStore(config_table, client=dynamodb).save_template(receipt_template, receipt_template)
    profiles = ProfileStore(table, client=dynamodb)
    for n in range(3):
        profiles.save(WritePlan(Profile(id=f"p{n:02d}", created_at=iso(START), traits={"email": f"p{n}@example.org"})))
    clock = Clock(START + timedelta(milliseconds=100), moves=moves)
    deliverer = stack.load("DeliverFunction", clock)
    deliverer._sleep = lambda: clock.sleep  # the function's waiting, on the test's clock
    requests = [receipt(n) for n in range(3)]

    answer = deliverer.lambda_handler(sqs_event([r.model_dump_json() for r in requests]), Context())

    assert answer == {"batchItemFailures": []}  # nothing counts toward the dead-letter queue
    records = MessageLedger(table, client=dynamodb).many([r.message_id for r in requests])
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    if moves:
        # Each waited for the next second's token: one a second, as the rate says.
        assert [r["status"] for r in records] == [SENT] * 3
        seconds = sorted(parse_iso(r["updatedAt"]).replace(microsecond=0) for r in records)
        assert seconds == [START + timedelta(seconds=s) for s in range(3)]
        assert len(sent) == 3
    else:
        # A clock that does not move gets no token: the two over the rate are given back, delayed.
        assert Counter(r["status"] for r in records) == Counter({SENT: 1, "queued": 2})
        assert all(
            r["reason"].startswith("paced: email is at its send rate") for r in records if r["status"] == "queued"
        )
        assert len(sent) == 1
        sqs = stack.clients.sqs()
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.output("DeliveryQueueUrl"), AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        assert attributes["ApproximateNumberOfMessagesDelayed"] == "2"
