"""An experiment on single messages, on the real deliver function on moto: a send naming an
experiment (a rule's action, a journey's step, an API send) is dealt an arm per person; each arm's
template and vars are what SES sends, the holdout arm is blocked as measured and not sent, every
dealt person is logged as an exposure on the archive stream, and a redelivery deals the same arm
and sends nothing twice. An experiment that is not running splits nobody; one that does not
exist fails the message with the reason."""

from __future__ import annotations

import email
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.experiment_store import ExperimentTable
from midstage.adapters.messaging_store import MessageLedger
from midstage.adapters.profile_store import ProfileStore
from midstage.logic.experiments.assignment import Split, assign
from midstage.logic.experiments.lifecycle import start
from midstage.logic.timefmt import iso
from midstage.models.experiments import Experiment
from midstage.models.messaging import MessageRequest, Origin, Template
from midstage.models.profile import Profile, WritePlan
from tests.integration.conftest import Context, Stack
from tests.integration.test_campaign_runs import sqs_event
from tests.integration.test_channel_pauses import Clock

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # daytime: quiet hours do not defer
PEOPLE = 60
CONSENT = {"email:marketing": {"granted": True, "stamp": "2026-11-01T10:00:00.000Z|m|src", "source": "src"}}
ARMS = [
    {"id": "plain", "weight": 40},
    {"id": "bold", "weight": 40, "content": {"template": "note-bold", "vars": {"tone": "bold"}}},
    {"id": "holdout", "weight": 20, "holdout": True},
]


def experiment(status: str = "running", **changes: Any) -> Experiment:
    draft = Experiment.model_validate(
        {
            "id": "welcome-subjects",
            "name": "Welcome subject lines",
            "target": {"kind": "rule", "id": "welcome"},
            "arms": ARMS,
            "goal": "purchase",
            "metrics": [{"id": "purchase", "kind": "conversion", "event": "Order Completed"}],
            "created_at": NOW,
            "updated_at": NOW,
            **changes,
        }
    )
    return start(draft, NOW) if status == "running" else draft


def message(n: int, experiment_id: str = "welcome-subjects") -> MessageRequest:
    return MessageRequest(
        key=f"rule:welcome:0:{experiment_id}:p{n}",
        origin=Origin(kind="rule", id="welcome", step="action-0"),
        profile_id=f"p{n}",
        channels=["email"],
        template="note",
        vars={"tone": "plain"},
        category="marketing",
        requested_at=iso(NOW),
        experiment=experiment_id,
    )


def emails_by_subject() -> dict[str, str]:
    """Each recipient and the subject SES sent them (one email each, or the test fails)."""
    sent: dict[str, str] = {}
    for raw in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages:
        subject = str(email.message_from_string(raw.raw_data)["Subject"])
        for address in set(raw.destinations):  # moto lists a raw message's recipient twice
            assert address not in sent, f"{address} was sent twice"
            sent[str(address)] = subject
    return sent


def archived_exposures(stack: Stack) -> list[dict[str, Any]]:
    s3 = stack.clients.client("s3")
    bucket = stack.output("ArchiveBucketName")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="firehose-raw/").get("Contents", [])]
    lines = b"".join(s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys)
    found = [json.loads(line) for line in lines.splitlines() if line.strip()]
    return [r for r in found if r["kind"] == "experiment_exposure"]


@pytest.fixture
def people(stack: Stack) -> Stack:
    dynamodb = stack.clients.dynamodb()
    config = ConfigStore(stack.output("ConfigTableName"), client=dynamodb)
    for template_id, subject in (("note", "Hello {{ vars.tone }}"), ("note-bold", "HELLO {{ vars.tone }}")):
        draft = Template(
            id=template_id, name=template_id, channel="email", locales={"en": {"subject": subject, "text": "Hi"}}
        )
        approved = draft.model_copy(update={"status": "approved"})
        config.save_template(approved, approved)
    stack.clients.sesv2().create_email_identity(EmailIdentity="example.com")
    profiles = ProfileStore(stack.output("DataTableName"), client=dynamodb)
    for n in range(PEOPLE):
        person = Profile(id=f"p{n}", created_at=iso(NOW), traits={"email": f"p{n}@example.org"}, consent=CONSENT)
        profiles.save(WritePlan(person))
    return stack


def test_each_person_gets_their_arms_message_the_holdout_nothing_and_everyone_dealt_is_exposed(people: Stack) -> None:
    stack = people
    split = experiment()
    assert ExperimentTable(stack.output("DataTableName"), client=stack.clients.dynamodb()).save_experiment(
        split, expected_version=None
    )
    deliverer = stack.load("DeliverFunction", Clock(NOW))
    arms = {
        f"p{n}": assign(Split.of([(a["id"], a["weight"]) for a in ARMS]), split.id, 1, f"p{n}") for n in range(PEOPLE)
    }
    assert set(arms.values()) == {"plain", "bold", "holdout"}

    batch = [message(n).model_dump_json() for n in range(PEOPLE)]
    for _ in range(2):  # and every message delivered again
        assert deliverer.lambda_handler(sqs_event(batch), Context()) == {"batchItemFailures": []}

    subjects = {"plain": "Hello plain", "bold": "HELLO bold"}
    sent = emails_by_subject()
    assert sent == {f"{p}@example.org": subjects[arm] for p, arm in arms.items() if arm != "holdout"}
    ledger = MessageLedger(stack.output("DataTableName"), client=stack.clients.dynamodb())
    records = {str(r["profileId"]): r for r in ledger.many([message(n).message_id for n in range(PEOPLE)])}
    held = {p for p, arm in arms.items() if arm == "holdout"}
    assert {p for p, r in records.items() if r["status"] == "blocked"} == held
    assert all(str(records[p]["reason"]).startswith("experiment_holdout: welcome-subjects arm holdout") for p in held)
    exposures = archived_exposures(stack)
    assert {(r["profile_id"], r["variant"]) for r in exposures} == set(arms.items())
    # A redelivered message is the ledger's duplicate: not dealt, exposed or sent again.
    assert len({r["record_id"] for r in exposures}) == PEOPLE
    assert {r["experiment_id"] for r in exposures} == {"welcome-subjects"}
    assert {(r["origin_kind"], r["origin_id"]) for r in exposures} == {("rule", "welcome")}


def test_an_experiment_not_running_splits_nobody_and_a_missing_one_fails_the_message(people: Stack) -> None:
    stack = people
    assert ExperimentTable(stack.output("DataTableName"), client=stack.clients.dynamodb()).save_experiment(
        experiment(status="draft"), expected_version=None
    )
    deliverer = stack.load("DeliverFunction", Clock(NOW))
    batch = [message(n).model_dump_json() for n in range(10)] + [message(10, "no-such-test").model_dump_json()]

    assert deliverer.lambda_handler(sqs_event(batch), Context()) == {"batchItemFailures": []}

    assert Counter(emails_by_subject().values()) == Counter({"Hello plain": 10})
    assert archived_exposures(stack) == []
    ledger = MessageLedger(stack.output("DataTableName"), client=stack.clients.dynamodb())
    [missing] = ledger.many([message(10, "no-such-test").message_id])
    assert (missing["status"], missing["reason"]) == ("failed", "no_experiment: experiment no-such-test does not exist")
