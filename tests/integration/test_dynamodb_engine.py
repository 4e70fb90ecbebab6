"""The local cloud's DynamoDB engine (infra/localcloud/dynamodb_engine.py) on moto, in-process.

It changes how moto finds items (partitions for queries, a bucketed partition index for scans,
item backups for transactions), so these tests hold it to DynamoDB's contract: every item of a
scan exactly once across pages and segments while the table changes, queries in key order, a
cancelled transaction leaving every item as it was, and no table-sized copy on any write.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.localcloud.dynamodb_engine import install

TABLE = "engine-test"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    install()
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        yield client


def _put(client: Any, pk: str, sk: str, **attributes: str) -> None:
    item = {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"S": v} for k, v in attributes.items()}}
    client.put_item(TableName=TABLE, Item=item)


def _keys(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(item["pk"]["S"], item["sk"]["S"]) for item in items]


def _scan_all(
    client: Any, limit: int, segment: int | None = None, total: int | None = None, **kw: Any
) -> Iterator[Any]:
    """Scan page by page, yielding each page's keys (so a test can change the table in between)."""
    request: dict[str, Any] = {"TableName": TABLE, "Limit": limit, **kw}
    if total is not None:
        request.update(Segment=segment, TotalSegments=total)
    while True:
        page = client.scan(**request)
        yield _keys(page["Items"])
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_paged_scan_returns_every_item_once(dynamodb: Any) -> None:
    # Given partitions of one to five items each
    rng = random.Random(7)
    stored = {(f"P#{p:04d}", f"S#{s}") for p in range(300) for s in range(rng.randint(1, 5))}
    for pk, sk in stored:
        _put(dynamodb, pk, sk)

    # When the table is scanned in pages of every size, whole and in parallel segments
    for limit in (1, 7, 100, 1000):
        seen = [key for page in _scan_all(dynamodb, limit) for key in page]
        # Then each item comes exactly once, and no page is larger than the limit
        assert sorted(seen) == sorted(stored)
        assert len(seen) == len(set(seen))
    for total in (1, 3, 8, 16):
        seen = [key for segment in range(total) for page in _scan_all(dynamodb, 50, segment, total) for key in page]
        assert sorted(seen) == sorted(stored)


def test_a_scan_sees_each_item_that_stays_exactly_once_while_the_table_changes(dynamodb: Any) -> None:
    # Given a table, scanned in small pages while items are added and removed between pages
    rng = random.Random(11)
    staying = {(f"P#{p:04d}", f"S#{s}") for p in range(200) for s in range(2)}
    for pk, sk in staying:
        _put(dynamodb, pk, sk)
    seen: list[tuple[str, str]] = []
    churn = 0
    for segment in range(4):
        for page in _scan_all(dynamodb, 13, segment, 4):
            seen.extend(page)
            for _ in range(5):  # new partitions, new items in old partitions, items deleted
                churn += 1
                _put(dynamodb, f"N#{churn:05d}", "S#0")
                _put(dynamodb, f"P#{rng.randrange(200):04d}", f"T#{churn}")
                victim = rng.choice([k for k in seen if k[0].startswith("N#")] or [("none", "none")])
                dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": victim[0]}, "sk": {"S": victim[1]}})

    # Then every item present from start to end was returned exactly once
    stayed = [key for key in seen if key in staying]
    assert sorted(stayed) == sorted(staying)
    assert len(seen) == len(set(seen))


def test_a_scan_with_a_filter_pages_by_items_read(dynamodb: Any) -> None:
    # Given items of which one in ten matches
    for p in range(100):
        _put(dynamodb, f"P#{p:03d}", "S", kind="hit" if p % 10 == 0 else "miss")

    # When scanned with a filter in pages of 20 items read
    pages = list(
        _scan_all(
            dynamodb,
            20,
            FilterExpression="kind = :k",
            ExpressionAttributeValues={":k": {"S": "hit"}},
        )
    )

    # Then all ten matches come back, spread over the pages of items read (DynamoDB's Limit)
    assert sorted(key for page in pages for key in page) == [(f"P#{p:03d}", "S") for p in range(0, 100, 10)]
    assert len(pages) >= 5


def test_a_query_reads_its_partition_in_key_order_with_paging_and_conditions(dynamodb: Any) -> None:
    # Given a large table and one partition of 50 items written out of order
    for p in range(500):
        _put(dynamodb, f"OTHER#{p}", "S#0")
    order = list(range(50))
    random.Random(3).shuffle(order)
    for n in order:
        _put(dynamodb, "P#one", f"S#{n:03d}")

    def query(**kw: Any) -> list[str]:
        request: dict[str, Any] = {
            "TableName": TABLE,
            "KeyConditionExpression": "pk = :p" + (" AND sk BETWEEN :a AND :b" if "between" in kw else ""),
            "ExpressionAttributeValues": {":p": {"S": "P#one"}},
        }
        if "between" in kw:
            low, high = kw.pop("between")
            request["ExpressionAttributeValues"].update({":a": {"S": low}, ":b": {"S": high}})
        request.update(kw)
        found: list[str] = []
        while True:
            page = dynamodb.query(**request)
            found.extend(item["sk"]["S"] for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # Then the partition comes back sorted, forwards and backwards, in pages, and by range
    assert query() == [f"S#{n:03d}" for n in range(50)]
    assert query(Limit=7) == [f"S#{n:03d}" for n in range(50)]
    assert query(ScanIndexForward=False, Limit=9) == [f"S#{n:03d}" for n in reversed(range(50))]
    assert query(between=("S#010", "S#014")) == [f"S#{n:03d}" for n in range(10, 15)]
    missing = dynamodb.query(
        TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "P#none"}}
    )
    assert missing["Items"] == []


def test_a_cancelled_transaction_leaves_every_item_as_it_was(dynamodb: Any) -> None:
    # Given an existing item and a transaction whose last condition fails after two writes
    _put(dynamodb, "P#a", "S", v="1")
    _put(dynamodb, "P#guard", "S", v="old")
    actions = [
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "P#a"}, "sk": {"S": "S"}, "v": {"S": "2"}}}},
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "P#new"}, "sk": {"S": "S"}, "v": {"S": "x"}}}},
        {
            "Update": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "P#guard"}, "sk": {"S": "S"}},
                "UpdateExpression": "SET v = :n",
                "ConditionExpression": "v = :expected",
                "ExpressionAttributeValues": {":n": {"S": "new"}, ":expected": {"S": "something else"}},
            }
        },
    ]

    # When it is cancelled
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=actions)

    # Then nothing it wrote remains, a scan included (the partition index follows the rollback)
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "P#a"}, "sk": {"S": "S"}})["Item"]["v"] == {"S": "1"}
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "P#new"}, "sk": {"S": "S"}})
    assert dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "P#guard"}, "sk": {"S": "S"}})["Item"]["v"] == {
        "S": "old"
    }
    assert sorted(k for page in _scan_all(dynamodb, 1) for k in page) == [("P#a", "S"), ("P#guard", "S")]

    # And with a condition that holds, every write is applied
    actions[2]["Update"]["ExpressionAttributeValues"][":expected"] = {"S": "old"}
    dynamodb.transact_write_items(TransactItems=actions)
    assert sorted(k for page in _scan_all(dynamodb, 2) for k in page) == [
        ("P#a", "S"),
        ("P#guard", "S"),
        ("P#new", "S"),
    ]


def test_no_write_copies_a_table(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's own transaction deep-copied whole tables per item: a write then cost the table's size."""
    from moto.dynamodb.models.table import Table

    def refuse(self: Table, memo: dict[int, Any]) -> Table:
        raise AssertionError("a table was copied")

    monkeypatch.setattr(Table, "__deepcopy__", refuse, raising=False)
    for p in range(20):
        _put(dynamodb, f"P#{p}", "S")
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "P#t"}, "sk": {"S": "S"}}}},
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": {"pk": {"S": "P#u"}, "sk": {"S": "S"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
    )
    with pytest.raises(ClientError):
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": {"pk": {"S": "P#u"}, "sk": {"S": "S"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            ]
        )


def test_reading_missing_keys_leaves_nothing_behind(dynamodb: Any) -> None:
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends["123456789012"]["us-east-1"].get_table(TABLE)
    _put(dynamodb, "P#kept", "S")
    for n in range(100):
        dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"P#missing-{n}"}, "sk": {"S": "S"}})
        dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": f"P#gone-{n}"}, "sk": {"S": "S"}})
    dynamodb.batch_get_item(
        RequestItems={TABLE: {"Keys": [{"pk": {"S": f"P#batch-{n}"}, "sk": {"S": "S"}} for n in range(50)]}}
    )
    assert list(table.items) == [next(iter(table.items))]
    assert len(table.items) == 1


def test_expired_items_are_deleted_as_dynamodb_ttl_does(dynamodb: Any) -> None:
    from moto.dynamodb.models import dynamodb_backends

    from infra.localcloud.dynamodb_engine import BUCKETS, expire

    # Given a table with TTL on, and items past, future, ancient, and without the attribute
    dynamodb.update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"}
    )
    now = 2_000_000_000
    cases = {"past": now - 10, "future": now + 10, "ancient": now - 6 * 365 * 86400}
    for name, expires in cases.items():
        for n in range(30):
            dynamodb.put_item(
                TableName=TABLE,
                Item={"pk": {"S": f"{name}#{n}"}, "sk": {"S": "S"}, "expiresAt": {"N": str(expires)}},
            )
    _put(dynamodb, "no-ttl", "S")
    _put(dynamodb, "text-ttl", "S", expiresAt="1")
    backend = dynamodb_backends["123456789012"]["us-east-1"]

    # When the sweep walks every bucket
    deleted = sum(expire(backend, now, 16) for _ in range(BUCKETS // 16))

    # Then only the items whose TTL passed within the last five years are gone
    left = {key[0].split("#")[0] for page in _scan_all(dynamodb, 100) for key in page}
    assert deleted == 30
    assert left == {"future", "ancient", "no-ttl", "text-ttl"}
