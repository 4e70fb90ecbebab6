"""Privacy requests reach destinations (services/destination_notices.py), through the real admin
handler, the import queue's worker, the profile updater and the forwarder, on moto: a person
suppressed by /v1/regulations is told to a webhook destination as a signed `suppress` call, after
that person's earlier events, retried while the destination fails; a Segment-compatible
destination is reported as not told, with why; the request's report says which were told."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.destination_senders import DestinationSender
from midstage.adapters.destination_store import DestinationStore
from midstage.logic import destinations as logic
from midstage.logic.destination_notices import notice_message_id
from midstage.logic.timefmt import iso
from midstage.models.destinations import DestinationCreate
from midstage.services.admin.destinations import DestinationAdmin
from tests.integration.conftest import Context, Stack
from tests.integration.test_admin_messaging import Api
from tests.integration.test_handlers import drain
from tests.integration.test_privacy_requests import (  # noqa: F401 - the fixture is used by name
    SUPPRESS_ANN,
    api,
    updater_event,
    work_requests,
)
from tests.support.http_sink import Sink

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def destinations(stack: Stack, clock: Clock) -> DestinationAdmin:
    dynamodb = stack.clients.dynamodb()
    return DestinationAdmin(
        ConfigStore(stack.output("ConfigTableName"), cache_seconds=0, client=dynamodb),
        DestinationStore(stack.output("DataTableName"), client=dynamodb),
        DestinationSender(allow_local=True).check_url,
        max_window_days=90,
        clock=clock,
    )


def test_a_suppressed_person_is_told_to_a_webhook_destination_after_their_events_with_retries(
    api: Api,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBHOOK_ALLOW_LOCAL", "true")  # the sink is on 127.0.0.1
    stack, clock = api.stack, Clock(T0)
    admin = destinations(stack, clock)
    forwarder = stack.load("ForwardDestinationsFunction", clock)  # type: ignore[arg-type]
    with Sink(status=500) as sink:
        # Given a webhook destination that is failing, a Segment-compatible one, and a paused webhook
        webhook = admin.create_destination(DestinationCreate(name="crm", kind="webhook", url=sink.url + "/hook"))
        segment = admin.create_destination(
            DestinationCreate(name="seg", kind="segment", url=sink.url, write_key="wk_1234567890")
        )
        paused = admin.create_destination(
            DestinationCreate(name="later", kind="webhook", url=sink.url + "/later", enabled=False)
        )
        # and one of Ann's events queued for them before the request
        updater = stack.load("ProfileUpdaterFunction")
        assert updater.lambda_handler(updater_event("before-suppress", userId="ann"), Context()) == {
            "batchItemFailures": []
        }
        records = drain(stack, "DestinationsQueue")
        assert forwarder.lambda_handler({"Records": records}, Context()) == {"batchItemFailures": []}

        # When a data operator suppresses Ann and the worker runs the request
        regulate_id = api.post("/v1/regulations", SUPPRESS_ANN, role="data_operator")["regulateId"]
        work_requests(api)

        # Then the request's report has a destinations entry: both webhooks told, Segment not, with why
        shown = api.get(f"/v1/regulations/{regulate_id}", role="data_operator")
        assert shown["status"] == "FINISHED", shown.body
        entry = {e["store"]: e for e in shown["report"]}["destinations"]
        told = {t["destinationId"]: t for t in entry["told"]}
        assert set(told) == {webhook["id"], paused["id"]}
        assert (told[webhook["id"]]["notices"], told[paused["id"]]["paused"]) == (1, True)
        assert entry["notices"] == 2
        assert [n["destinationId"] for n in entry["notTold"]] == [segment["id"]]
        assert "Regulations API" in entry["notTold"][0]["why"]

        # When the scheduled run goes while the webhook fails, then after it recovers
        forwarder.lambda_handler({"scheduledTime": iso(clock.now)}, Context())
        assert sink.accepted() == []
        assert admin.stats(webhook["id"])["pending"] == 2
        sink.status = 200
        for minute in range(1, 15):
            clock.now = T0 + timedelta(minutes=minute)
            forwarder.lambda_handler({"scheduledTime": iso(clock.now)}, Context())

        # Then the webhook got Ann's event, then the notice, once each, signed with its secret
        items = [(r, item) for r in sink.accepted() if r.path == "/hook" for item in json.loads(r.body)["batch"]]
        assert [item["event"]["type"] for _, item in items] == ["track", "suppress"]
        request, item = items[-1]
        stamp = int(request.headers["midstage-signature"].split(",")[0][2:])
        assert logic.verify(request.headers["midstage-signature"], request.body, webhook["secret"], stamp)
        call: dict[str, Any] = item["event"]
        assert item["messageId"] == call["messageId"] == notice_message_id(regulate_id, api.ann_id(), webhook["id"])
        assert call["userId"] == "ann"
        assert call["context"]["regulation"]["regulateId"] == regulate_id
        assert call["context"]["identifiers"]["emails"] == ["ann@example.com"]
        assert api.ann_id() in call["context"]["identifiers"]["profileIds"]
        assert admin.stats(webhook["id"])["pending"] == 0
        # and the Segment endpoint received Ann's event only, the paused webhook nothing yet
        segment_calls = [c for r in sink.accepted() if r.path == "/v1/batch" for c in json.loads(r.body)["batch"]]
        assert [c["type"] for c in segment_calls] == ["track"]
        assert not [r for r in sink.received if r.path == "/later"]
        assert admin.stats(paused["id"])["pending"] == 2


def test_unsuppress_and_export_tell_destinations_nothing(api: Api) -> None:  # noqa: F811 - the fixture
    admin = destinations(api.stack, Clock(T0))
    created = admin.create_destination(
        DestinationCreate(
            name="bus", kind="eventbridge", bus_arn="arn:aws:events:us-east-1:123456789012:event-bus/x", batch_size=10
        )
    )
    ann = {"subjectType": "USER_ID", "subjectIds": ["ann"]}
    lifted = api.post("/v1/regulations", {"regulationType": "UNSUPPRESS", **ann})["regulateId"]
    work_requests(api)
    report = {e["store"] for e in api.get(f"/v1/regulations/{lifted}")["report"]}
    assert "destinations" not in report
    assert admin.stats(created["id"])["pending"] == 0
