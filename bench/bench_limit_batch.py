"""A batch at the documented limit (2,500 events for 50 people), repeated, through the local cloud.

Every batch is sent over HTTP to `/v1/batch`, then the cloud is left to settle (queues drained,
nothing running). At the end every person's profile must count every event and their timeline
must hold every event, and every dead-letter queue must be empty: acknowledged means applied.

Figures: the time from sending a batch to the cloud being idle again, the profile updater's
invocations (records per invocation, duration, records deferred to a later invocation because
the invocation's time budget was spent) and the dead letters. The machine is shared, so times
are what they were on it; the counts are exact.

`python -m bench limit_batch` runs 20 repetitions; BENCH_REPETITIONS overrides.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.demo import bootstrap

PEOPLE = 50
EVENTS_PER_PERSON = 50  # 2,500 events: the documented batch limit
REPETITIONS = int(os.environ.get("BENCH_REPETITIONS", "20"))
DEAD_LETTER_QUEUES = (
    "IngestDeadLetterQueue",
    "DeliveryDeadLetterQueue",
    "FeedbackDeadLetterQueue",
    "CampaignDeadLetterQueue",
    "RefreshDeadLetterQueue",
    "EvaluateRulesDeadLetterQueue",
    "RunJourneysDeadLetterQueue",
    "EvaluateRulesFailedQueue",
    "RunJourneysFailedQueue",
    "StartCampaignFailedQueue",
    "MeasureConversionsFailedQueue",
)


def batch(repetition: int, run: str) -> dict[str, Any]:
    """50 events for each of 50 people: 49 product views and one order."""
    events = []
    for event_number in range(EVENTS_PER_PERSON):
        for person in range(PEOPLE):
            order = event_number == EVENTS_PER_PERSON - 1
            events.append(
                {
                    "type": "track",
                    "userId": f"{run}-p{person:02d}",
                    "event": "Order Completed" if order else "Product Viewed",
                    "properties": {"revenue": 10} if order else {"sku": f"S-{event_number:02d}"},
                    "messageId": f"{run}-{repetition}-{person}-{event_number}",
                }
            )
    return {"batch": events}


def request(url: str, method: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
    sent = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    for name, value in (headers or {}).items():
        sent.add_header(name, value)
    try:
        with urllib.request.urlopen(sent, timeout=60) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def run_limit_batches(cloud: LocalCloud, write_key: str, admin_key: str, repetitions: int) -> dict[str, Any]:
    """Send the batches, let each settle, then check every person. Returns the figures."""
    run = uuid.uuid4().hex[:6]
    basic = {"authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    bearer = {"authorization": f"Bearer {admin_key}"}
    sqs = cloud.client("sqs")
    ingest = sqs.get_queue_url(QueueName=cloud.physical_name("IngestQueue"))["QueueUrl"]
    settle_s: list[float] = []
    applied_s: list[float] = []
    retried_5xx = 0
    for repetition in range(repetitions):
        body = batch(repetition, run)
        started = time.perf_counter()
        status, answer = request(cloud.api_url + "/v1/batch", "POST", body, basic)
        for _ in range(3):  # as an SDK does: a 5xx is retried, and messageIds make it safe
            if status < 500:
                break
            retried_5xx += 1
            time.sleep(1)
            status, answer = request(cloud.api_url + "/v1/batch", "POST", body, basic)
        if status != 200 or answer.get("accepted") != PEOPLE * EVENTS_PER_PERSON:
            raise RuntimeError(f"batch {repetition}: {status} {str(answer)[:300]}")
        while _depth(sqs, ingest):  # the profile updater's part: the ingest queue drained
            time.sleep(0.5)
        applied_s.append(time.perf_counter() - started)
        cloud.wait_idle(timeout=3600)  # and what the domain events set off (rules, journeys...)
        settle_s.append(time.perf_counter() - started)

    expected = EVENTS_PER_PERSON * repetitions
    incomplete: dict[str, str] = {}
    for person in range(PEOPLE):
        ref = f"user_id:{run}-p{person:02d}"
        status, profile = request(cloud.api_url + f"/v1/profiles/{ref}", "GET", headers=bearer)
        if status != 200:
            incomplete[ref] = f"no profile ({status})"
            continue
        counts = profile["computed"].get("event_counts", {})
        views = counts.get("Product Viewed", {}).get("total", 0)
        orders = profile["computed"].get("orders", 0)
        if (views, orders) != ((EVENTS_PER_PERSON - 1) * repetitions, repetitions):
            incomplete[ref] = f"profile counts {views} views and {orders} orders"
            continue
        seen, cursor = 0, None
        while True:
            query = f"?limit=200&cursor={urllib.request.quote(cursor, safe='')}" if cursor else "?limit=200"
            status, page = request(cloud.api_url + f"/v1/profiles/{ref}/timeline{query}", "GET", headers=bearer)
            seen += len(page["events"])
            cursor = page["cursor"]
            if not cursor:
                break
        if seen != expected:
            incomplete[ref] = f"timeline holds {seen} of {expected} events"

    dead = {}
    for logical_id in DEAD_LETTER_QUEUES:
        url = sqs.get_queue_url(QueueName=cloud.physical_name(logical_id))["QueueUrl"]
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        dead[logical_id] = int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
    invocations = cloud.invocations("ProfileUpdaterFunction")
    durations = [i.duration_ms / 1000 for i in invocations]
    records = [len(i.event.get("Records", [])) for i in invocations]
    failed = [len((i.payload or {}).get("batchItemFailures", [])) for i in invocations if i.error is None]
    errors = [i.error.get("errorType") for i in invocations if i.error is not None]
    return {
        "repetitions": repetitions,
        "events": PEOPLE * EVENTS_PER_PERSON * repetitions,
        "settle_s": settle_s,
        "retried_5xx": retried_5xx,
        "applied_s": applied_s,
        "incomplete": incomplete,
        "dead_letters": {k: v for k, v in dead.items() if v},
        "updater_invocations_seen": len(invocations),
        "updater_duration_s": durations,
        "updater_records": records,
        "updater_records_returned": sum(failed),
        "updater_errors": errors,
    }


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def report(figures: dict[str, Any]) -> None:
    settle = figures["settle_s"]
    durations = figures["updater_duration_s"] or [0.0]
    print(
        f"   {figures['repetitions']} batches of {PEOPLE * EVENTS_PER_PERSON:,} events for {PEOPLE} people "
        f"({figures['events']:,} events)"
    )
    applied = figures["applied_s"]
    print(
        f"   batch sent to every event applied (ingest queue drained): median {statistics.median(applied):.1f} s, "
        f"min {min(applied):.1f} s, max {max(applied):.1f} s"
    )
    print(
        f"   batch sent to idle (rules, journeys, conversions done): median {statistics.median(settle):.1f} s, "
        f"min {min(settle):.1f} s, max {max(settle):.1f} s"
    )
    print(
        f"   profile updater, last {figures['updater_invocations_seen']} invocations: "
        f"records per invocation median {statistics.median(figures['updater_records'] or [0]):.0f}, "
        f"duration median {statistics.median(durations):.2f} s, max {max(durations):.2f} s; "
        f"records handed back for later {figures['updater_records_returned']}; errors {len(figures['updater_errors'])}"
    )
    print(f"   people incomplete: {len(figures['incomplete'])} of {PEOPLE} {figures['incomplete'] or ''}")
    print(f"   dead letters: {sum(figures['dead_letters'].values())} {figures['dead_letters'] or ''}")
    print(f"   batch requests retried after a 5xx (gateway's 30 s while the cloud is busy): {figures['retried_5xx']}")


def main() -> None:
    with LocalCloud() as cloud:
        source, admin_key = bootstrap(cloud, echo=False)
        figures = run_limit_batches(cloud, source.write_key, admin_key, REPETITIONS)
    report(figures)


if __name__ == "__main__":
    main()
