"""The one DynamoDB helper module the stores share: low-level values, keys, and telling a lost
condition from a real failure."""

from __future__ import annotations

from botocore.exceptions import ClientError

from midstage.adapters import dynamo as ddb


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "PutItem")


def test_values_and_keys_are_in_low_level_form() -> None:
    # Given a key as midstage.keys builds it, When it is converted, Then every part is a string value.
    assert ddb.key({"pk": "P#1", "sk": "PROFILE"}) == {"pk": {"S": "P#1"}, "sk": {"S": "PROFILE"}}
    assert ddb.s("x") == {"S": "x"}
    assert ddb.n(3) == {"N": "3"}


def test_a_lost_condition_is_told_apart_from_a_real_failure() -> None:
    # Given the errors DynamoDB answers with, Then only a failed condition counts as lost to a writer.
    assert ddb.condition_failed(_error("ConditionalCheckFailedException"))
    assert not ddb.condition_failed(_error("ProvisionedThroughputExceededException"))
    assert not ddb.condition_failed(ClientError({}, "PutItem"))


def test_a_transaction_lost_to_a_concurrent_writer_is_recognised() -> None:
    assert ddb.transaction_lost(_error("TransactionCanceledException"))
    assert ddb.transaction_lost(_error("TransactionConflictException"))
    assert not ddb.transaction_lost(_error("ConditionalCheckFailedException"))


def test_item_size_follows_dynamodb_sizing_rules() -> None:
    # Given a name of 2 bytes and a 5-digit number (3 bytes + 1), When sized, Then 6 bytes.
    assert ddb.item_size({"ab": {"N": "12345"}}) == 2 + 4
    # Given 1025 bytes of string, Then two write units, four inside a transaction.
    big = {"d": {"S": "x" * 1024}}
    assert ddb.write_units(big) == 2
    assert ddb.write_units(big, transactional=True) == 4


def test_the_client_is_made_on_first_use_not_at_construction() -> None:
    # Given a table with no client, When constructed, Then nothing is connected yet.
    table = ddb.Table("DataTable")
    assert table._client is None
