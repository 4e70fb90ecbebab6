"""Import mappings kept on the source (`imports` of /v1/sources): an import over the admin API
without a mapping, and a file dropped in the bucket without a sidecar, are read by the source's
mapping for their kind; a mapping naming columns the files lack is refused with the columns named,
when saved (against the source's `columns`) or when the import is asked for (against the file)."""

from __future__ import annotations

import hashlib

import pytest

from tests.integration.conftest import Context, Stack
from tests.integration.test_bulk_imports import MAPPING, _object_created, apply, put_file, run_tasks, setup

HEADER = ["email", "order", "amount", "currency", "placed_at"]
ROWS = [
    "email,order,amount,currency,placed_at",
    "ann@example.com,o-1,19.90,USD,2026-11-20T10:00:00Z",
    "bob@example.com,o-2,5.00,USD,2026-11-20T11:00:00Z",
    "ann@example.com,o-3,30.10,USD,2026-11-21T10:00:00Z",
]


def test_an_import_without_a_mapping_uses_the_one_kept_on_its_source(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, runner, source_id = setup(stack, monkeypatch, part_bytes=1024)
    # Given the source keeps its orders mapping, with the columns its files have
    kept = {"orders": {"format": "csv", "mapping": MAPPING, "columns": HEADER}}
    saved = api.call("PATCH", f"/v1/sources/{source_id}", {"imports": kept})
    assert saved.status == 200, saved.body
    assert saved.body["imports"]["orders"]["mapping"]["revenue"] == "amount"
    # When an orders file is sent inline with neither mapping nor format
    started = api.call("POST", "/v1/imports", {"sourceId": source_id, "kind": "orders", "data": "\n".join(ROWS)})
    assert started.status == 202, started.body
    assert started.body["format"] == "csv"
    assert run_tasks(stack, runner) == []
    # Then it ran by the source's mapping: three orders, Ann's two on her profile
    progress = api.get(f"/v1/imports/{started.body['importId']}").body
    assert (progress["status"], progress["accepted"], progress["rejected"]) == ("done", 3, 0)
    assert sorted(e["properties"]["order_id"] for e in apply(stack)) == ["o-1", "o-2", "o-3"]
    ann = api.get("/v1/profiles/email:ann@example.com").body
    assert (ann["computed"]["orders"], ann["computed"]["revenue"]) == (2, 50.0)
    # And a mapping given with the request still wins over the kept one
    renamed = "\n".join(["mail,order,amount,currency,placed_at", *ROWS[1:2]])
    given = {"sourceId": source_id, "kind": "orders", "data": renamed, "mapping": {**MAPPING, "email": "mail"}}
    assert api.call("POST", "/v1/imports", given).status == 202


def test_a_kept_mapping_naming_unknown_columns_is_refused_when_saved_and_when_a_file_lacks_them(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _, source_id = setup(stack, monkeypatch, part_bytes=1024)
    # When a mapping names a column its declared `columns` lack, at creation or update
    typo = {"orders": {"mapping": {**MAPPING, "revenue": "amout"}, "columns": HEADER}}
    created = api.call("POST", "/v1/sources", {"name": "shop", "imports": typo})
    patched = api.call("PATCH", f"/v1/sources/{source_id}", {"imports": typo})
    # Then both are refused, naming the kind and the column
    for answer in (created, patched):
        assert (answer.status, answer.body["code"]) == (400, "invalid_body")
        assert (
            "imports.orders: the mapping names columns that are not among `columns`: 'amout'" in answer.body["message"]
        )
    # And an incomplete kept mapping too (an order without its revenue)
    partial = {"orders": {"mapping": {"email": "email", "order_id": "order"}}}
    refused = api.call("PATCH", f"/v1/sources/{source_id}", {"imports": partial})
    assert (
        refused.status == 400
        and "imports.orders: an order import needs the 'revenue' column" in refused.body["message"]
    )
    # When a kept mapping (no `columns`) meets a file whose header lacks one of its columns
    assert api.call("PATCH", f"/v1/sources/{source_id}", {"imports": {"orders": {"mapping": MAPPING}}}).status == 200
    lacking = "\n".join(["email,order,total,currency,placed_at", "ann@example.com,o-1,1.00,USD,2026-11-20T10:00:00Z"])
    key = f"imports/{source_id}/orders.csv"
    put_file(stack, key, lacking.encode())
    for request in ({"data": lacking, "format": "csv"}, {"s3Key": key}):
        answer = api.call("POST", "/v1/imports", {"sourceId": source_id, "kind": "orders", **request})
        # Then it is refused at once, saying whose mapping, which column and what the header has
        assert (answer.status, answer.body["code"]) == (400, "unknown_columns"), answer.body
        assert answer.body["message"] == (
            "the source's orders mapping (imports.orders) names columns the file's header lacks: 'amount' "
            "(the header has 'email', 'order', 'total', 'currency', 'placed_at')"
        )
    # And a kind the source keeps no mapping for, without one in the request, is refused with the way out
    none = api.call("POST", "/v1/imports", {"sourceId": source_id, "kind": "profiles", "format": "csv", "data": "a\n"})
    assert (none.status, none.body["code"]) == (400, "no_import_mapping")
    assert f"PATCH /v1/sources/{source_id} with `imports.profiles`" in none.body["message"]
    # And clearing the kept mappings (null) leaves none
    cleared = api.call("PATCH", f"/v1/sources/{source_id}", {"imports": None})
    assert cleared.status == 200 and cleared.body["imports"] == {}


def test_a_file_dropped_without_a_sidecar_is_read_by_the_kept_mapping_its_folder_names(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, runner, source_id = setup(stack, monkeypatch, part_bytes=1024)
    # Given a source that keeps an orders and a profiles mapping, and no sidecar in the bucket
    kept = {
        "orders": {"mapping": MAPPING},
        "profiles": {"format": "csv", "mapping": {"email": "email", "traits": ["plan"]}},
    }
    assert api.call("PATCH", f"/v1/sources/{source_id}", {"imports": kept}).status == 200
    # When an orders file is dropped under the source's orders/ folder, and another at its top
    key = f"imports/{source_id}/orders/2026-11.csv"
    etag = put_file(stack, key, "\n".join(ROWS).encode())
    runner.lambda_handler(_object_created(stack, key, etag), Context())
    loose = f"imports/{source_id}/loose.csv"
    loose_etag = put_file(stack, loose, b"email,plan\n")
    runner.lambda_handler(_object_created(stack, loose, loose_etag), Context())
    assert run_tasks(stack, runner) == []
    # Then the first is an orders import by the kept mapping, done
    import_id = "bimp_" + hashlib.sha256(f"{key}\n{etag}".encode()).hexdigest()[:20]
    done = api.get(f"/v1/imports/{import_id}").body
    assert (done["kind"], done["format"], done["status"], done["accepted"]) == ("orders", "csv", "done", 3)
    # And the loose one failed, saying to name the kind by the folder
    loose_id = "bimp_" + hashlib.sha256(f"{loose}\n{loose_etag}".encode()).hexdigest()[:20]
    failed = api.get(f"/v1/imports/{loose_id}").body
    assert failed["status"] == "failed"
    assert f"drop the file under imports/{source_id}/<kind>/" in failed["error"]
