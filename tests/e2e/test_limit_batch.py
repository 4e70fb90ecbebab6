"""A batch at the documented limit (2,500 events for 50 people) through the local cloud: every
event acknowledged is applied, every person's profile and timeline complete, and every
dead-letter queue empty, as the admin API and the CLI report them.

The repeated run (20 batches) is `bench/bench_limit_batch.py`, with its figures in
docs/benchmarks.md (about 16 s a batch on an idle two-core machine): CI runs one."""

from __future__ import annotations

import io
import urllib.parse
from contextlib import redirect_stdout

import pytest

from midstage import cli
from tests.e2e.conftest import Platform

PEOPLE = 50
EVENTS_PER_PERSON = 50
# The queues the admin API watches (the template's DEAD_LETTER_QUEUES): ingest, delivery, feedback,
# campaign, refresh, import, destinations, and the bus and invocation failures of four functions.
DEAD_LETTER_QUEUES = 13
# The wait below allows a loaded machine half an hour; pytest's default (300 s) would cut it short.
pytestmark = pytest.mark.timeout(2400)


def test_a_batch_at_the_limit_is_applied_whole_and_leaves_no_dead_letters(platform: Platform) -> None:
    # Given 2,500 events: 49 product views and an order for each of 50 people
    events = [
        {
            "type": "track",
            "userId": f"limit-p{person:02d}",
            "event": "Order Completed" if n == EVENTS_PER_PERSON - 1 else "Product Viewed",
            "properties": {"revenue": 10} if n == EVENTS_PER_PERSON - 1 else {"sku": f"S-{n:02d}"},
            "messageId": f"limit-{person}-{n}",
        }
        for n in range(EVENTS_PER_PERSON)
        for person in range(PEOPLE)
    ]

    # When they are sent in one batch and the cloud has settled
    answer = platform.track("/v1/batch", {"batch": events})
    for _ in range(3):  # as an SDK does: a 5xx (the gateway's 30 s on a busy machine) is retried safely
        if answer.status < 500:
            break
        answer = platform.track("/v1/batch", {"batch": events})
    assert (answer.status, answer.body["accepted"]) == (200, PEOPLE * EVENTS_PER_PERSON), answer.body
    platform.cloud.wait_idle(timeout=1800)

    # Then every person has every event, on the profile and on the timeline
    incomplete = {}
    for person in range(PEOPLE):
        ref = f"user_id:limit-p{person:02d}"
        profile = platform.profile(ref)
        counted = (profile["computed"]["event_counts"]["Product Viewed"]["total"], profile["computed"]["orders"])
        seen, cursor = 0, None
        while True:
            query = "limit=200" + (f"&cursor={urllib.parse.quote(cursor, safe='')}" if cursor else "")
            page = platform.admin("GET", f"/v1/profiles/{ref}/timeline?{query}").body
            seen += len(page["events"])
            cursor = page["cursor"]
            if not cursor:
                break
        if counted != (EVENTS_PER_PERSON - 1, 1) or seen != EVENTS_PER_PERSON:
            incomplete[ref] = (counted, seen)
    assert incomplete == {}

    # And no queue holds failed work, as the admin API and the CLI both say
    overview = platform.admin("GET", "/v1/dead-letters")
    assert overview.status == 200, overview.body
    assert {q["queue"]: q["messages"] for q in overview.body["queues"] if q["messages"]} == {}
    assert len(overview.body["queues"]) == DEAD_LETTER_QUEUES
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert cli.main(["dead-letters", "--url", platform.url, "--key", platform.admin_key]) == 0
    lines = printed.getvalue().splitlines()
    assert len(lines) == DEAD_LETTER_QUEUES
    assert all(line.split()[1] == "0" for line in lines), lines
