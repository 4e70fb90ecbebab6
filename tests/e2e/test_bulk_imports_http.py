"""Bulk imports on the local cloud: an orders CSV dropped in the bucket under a source's prefix
starts an import through S3's EventBridge notification, the import runs in parts off its queue,
and every buyer ends up a profile with their orders' revenue."""

from __future__ import annotations

import hashlib
import json
import uuid

from tests.e2e.conftest import Platform


def test_an_orders_csv_dropped_in_the_bucket_lands_as_profiles_with_revenue(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    # Given a source made over the admin API, with its orders mapping beside its files
    created = platform.admin("POST", "/v1/sources", {"name": f"warehouse-{run}"})
    assert created.status == 201, created.body
    source_id = created.body["id"]
    s3 = platform.cloud.client("s3")
    bucket = platform.cloud.outputs["ArchiveBucketName"]
    sidecar = {
        "kind": "orders",
        "mapping": {
            "email": "Email",
            "order_id": "Order",
            "revenue": "Total",
            "currency": "Currency",
            "timestamp": "Placed",
        },
    }
    s3.put_object(Bucket=bucket, Key=f"imports/{source_id}/_mapping.json", Body=json.dumps(sidecar).encode())
    # When a small orders CSV (a bad row among them) is dropped under the source's prefix
    ann, bob = f"ann-{run}@example.com", f"bob-{run}@example.com"
    rows = [
        "Email,Order,Total,Currency,Placed",
        f"{ann},{run}-1,19.90,USD,2026-11-20T10:00:00Z",
        f"{bob},{run}-2,5.00,USD,2026-11-20T11:00:00Z",
        f"{ann},{run}-3,30.10,USD,2026-11-21T10:00:00Z",
        f"{bob},{run}-4,not a number,USD,2026-11-21T11:00:00Z",
    ]
    key = f"imports/{source_id}/orders-{run}.csv"
    etag = s3.put_object(Bucket=bucket, Key=key, Body="\n".join(rows).encode())["ETag"].strip('"')
    platform.settle()
    # Then the import it started is done, with the bad row named by its line
    import_id = "bimp_" + hashlib.sha256(f"{key}\n{etag}".encode()).hexdigest()[:20]
    progress = platform.admin("GET", f"/v1/imports/{import_id}")
    assert progress.status == 200, progress.body
    assert progress.body["origin"] == "s3"
    assert (progress.body["status"], progress.body["rowsRead"], progress.body["accepted"]) == ("done", 4, 3)
    assert [(e["line"], e["code"]) for e in progress.body["errors"]] == [(5, "invalid_row")]
    # And each buyer is a profile, found by their email, with their orders' revenue
    buyer = platform.profile(f"email:{ann}")
    assert (buyer["computed"]["orders"], buyer["computed"]["revenue"]) == (2, 50.0)
    other = platform.profile(f"email:{bob}")
    assert (other["computed"]["orders"], other["computed"]["revenue"]) == (1, 5.0)
    assert other["id"] != buyer["id"]
