"""An offer's codes from an S3 drop, on moto, through the real import function: a CSV dropped
under `imports/offer-codes/<offer id>/` fills the offer's pool as an upload would, a second drop
of the same file adds nothing, and what cannot be used is reported (logged) without losing the
rest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from midstage.adapters.offer_store import OfferStore
from midstage.clock import fixed
from midstage.models.offers import Offer
from midstage.services.offers import OfferIssuer
from tests.integration.conftest import Context, Stack, sample

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _offer(offer_id: str, **changes: Any) -> Offer:
    document = {"id": offer_id, "name": offer_id, "kind": "percentage", "value": "10", **changes}
    return Offer.model_validate(document)


def _drop(stack: Stack, key: str, body: bytes) -> dict[str, Any]:
    """The object put in the stack's bucket, and S3's Object Created event for it handled."""
    bucket = stack.output("ArchiveBucketName")
    stack.clients.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    event = sample("run_imports", "object-created")
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    answer: dict[str, Any] = stack.load("RunImportsFunction", clock=fixed(NOW)).lambda_handler(event, Context())
    return answer


def _logged(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    """The import function's log entries with that message, with their fields."""
    found = [vars(record) for record in caplog.records if record.getMessage() == message]
    caplog.clear()
    return found


def test_a_csv_dropped_under_the_offers_folder_fills_its_pool_once(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a pooled offer, and a shop system's export: a header, Windows line ends, a bad line
    store = OfferStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    store.create(_offer("shop-10"))
    body = b"code,batch\r\nSHOP-0001,a\r\nSHOP-0002,a\r\nnot a code!,a\r\nSHOP-0003,a"
    key = "imports/offer-codes/shop-10/export-2026-11-22.csv"

    # When it is dropped in the bucket
    assert _drop(stack, key, body) == {}

    # Then its good codes are the pool's, and the bad line is reported by its number
    assert store.pool("shop-10").size == 3
    loaded = _logged(caplog, "offer codes loaded")
    assert [(e["added"], e["duplicates"], e["pool_size"], e["problems_total"]) for e in loaded] == [(3, 0, 3, 1)]
    assert loaded[0]["problems"] == [f"{key}:4: 'not a code!' is not 3 to 64 letters, digits, '_' or '-'"]
    # And the codes are issued like uploaded ones
    given = OfferIssuer(store).issue(store.offer("shop-10"), "prof_ann", "c", [], NOW)  # type: ignore[arg-type]
    assert given.code == "SHOP-0001"

    # When the same file is dropped again (an export sent twice, a redelivered event)
    _drop(stack, key, body)

    # Then nothing is added: each code is in the pool once
    assert store.pool("shop-10").size == 3
    again = _logged(caplog, "offer codes loaded")
    assert [(e["added"], e["duplicates"]) for e in again] == [(0, 3)]


def test_drops_that_cannot_be_loaded_are_reported_and_change_nothing(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    store = OfferStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    store.create(_offer("gen-10", source="generated"))
    store.create(_offer("shop-10"))

    _drop(stack, "imports/offer-codes/no-such-offer/codes.csv", b"SHOP-0001\n")
    _drop(stack, "imports/offer-codes/gen-10/codes.csv", b"SHOP-0001\n")
    _drop(stack, "imports/offer-codes/shop-10/codes.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    _drop(stack, "imports/offer-codes/shop-10/empty.csv", b"code\n")

    refused = _logged(caplog, "offer codes refused")
    assert [e["reason"] for e in refused] == [
        "no offer 'no-such-offer'",
        "offer 'gen-10' makes its own codes (source generated): it takes no pool",
        "the file is not UTF-8 text (byte 1)",
        "the file holds no codes",
    ]
    assert store.pool("shop-10").size == 0 and store.pool("gen-10").size == 0
