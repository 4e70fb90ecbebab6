"""The experiments plane's adapters where their logic is their own: the exposure log puts one
archive record per exposure, with an id per experiment, phase and person (a redelivered send is
the same record; a new phase is a new one); the store's writes carry the conditions optimistic
versions and the once-only decision rest on (pinned with botocore's Stubber: the request shape
is the contract DynamoDB enforces, checked for real on moto in the integration tier)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber

from midstage.adapters.experiment_store import ArchiveExposures, ExperimentTable
from midstage.errors import InvalidInput
from midstage.models.archive import ArchiveRecord, ExposureRecord
from midstage.models.experiments import Experiment

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Kept:
    """The archive sink's interface, keeping what it is given."""

    def __init__(self) -> None:
        self.records: list[ArchiveRecord] = []

    def put(self, records: Sequence[ArchiveRecord]) -> None:
        self.records.extend(records)


def test_an_exposure_is_one_archive_record_with_an_id_per_experiment_phase_and_person() -> None:
    kept = Kept()
    log = ArchiveExposures(kept, origin_kind="campaign", origin_id="black-friday")  # type: ignore[arg-type]
    log.log_exposure("bf", 1, "ann", "b", AT)
    log.log_exposure("bf", 1, "ann", "b", AT)  # a redelivered send
    log.log_exposure("bf", 2, "ann", "control", AT)  # a new phase deals again
    first, repeat, later = kept.records
    assert isinstance(first, ExposureRecord)
    assert (first.experiment_id, first.variant, first.profile_id, first.origin_id) == ("bf", "b", "ann", "black-friday")
    assert first.record_id == repeat.record_id != later.record_id


def experiment(version: int) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "bf",
            "name": "BF",
            "target": {"kind": "campaign", "id": "bf"},
            "arms": [{"id": "a", "weight": 1}, {"id": "b", "weight": 1}],
            "goal": "buy",
            "metrics": [{"id": "buy", "kind": "conversion", "event": "Order Completed"}],
            "version": version,
            "created_at": AT,
            "updated_at": AT,
        }
    )


@pytest.fixture
def stubbed() -> tuple[ExperimentTable, Stubber]:
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return ExperimentTable("data", client=client), Stubber(client)


def test_a_new_experiment_is_written_only_where_none_is(stubbed: tuple[ExperimentTable, Stubber]) -> None:
    table, stub = stubbed
    expected = {"TableName": "data", "Item": ANY, "ConditionExpression": "attribute_not_exists(pk)"}
    stub.add_response("put_item", {}, expected)
    stub.add_client_error("put_item", "ConditionalCheckFailedException", expected_params=expected)
    with stub:
        assert table.save_experiment(experiment(1), expected_version=None) is True
        assert table.save_experiment(experiment(1), expected_version=None) is False
    stub.assert_no_pending_responses()


def test_a_revision_is_written_only_over_the_version_read(stubbed: tuple[ExperimentTable, Stubber]) -> None:
    table, stub = stubbed
    expected = {
        "TableName": "data",
        "Item": ANY,
        "ConditionExpression": "version = :expected",
        "ExpressionAttributeValues": {":expected": {"N": "3"}},
    }
    stub.add_client_error("put_item", "ConditionalCheckFailedException", expected_params=expected)
    stub.add_client_error("put_item", "ProvisionedThroughputExceededException", expected_params=expected)
    with stub:
        assert table.save_experiment(experiment(4), expected_version=3) is False  # lost the race: told, not raised
        with pytest.raises(Exception, match="ProvisionedThroughputExceeded"):  # a real failure is not a lost race
            table.save_experiment(experiment(4), expected_version=3)


@pytest.mark.parametrize("cursor", ["x" * 65, "é", " "])
def test_a_cursor_no_listing_returned_is_refused_before_dynamodb(
    stubbed: tuple[ExperimentTable, Stubber], cursor: str
) -> None:
    table, stub = stubbed
    with stub, pytest.raises(InvalidInput, match="cursor"):
        table.list_experiments(10, cursor)
