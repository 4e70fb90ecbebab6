"""Bulk import rows per second: an orders CSV imported in parts, on moto directly.

The stack is deployed from template.yaml into moto in this process (as the integration tier does)
and the import runs through the real adapters: the file is read from moto's S3 (planned in one
pass, then each part by its byte range), each row goes through the tracking intake, the calls
are handed off to moto's ingest queue (SqsHandoff), refused rows are quarantined in DynamoDB and
each part's counts recorded in its transaction. Parts run one after another on one core, as one
worker would run them; the profile updater's side is bench_profile_updater's.

Two figures beside each other: the whole import on moto, and the same parts with in-memory ports
(the cost of reading, mapping and validating alone). `BULK_IMPORT_ROWS` (default 200,000) sets
the size; 1M rows is documented in docs/benchmarks.md, not run here by default.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from moto import mock_aws

from bench.bench_collect import EncodingHandoff, MemoryIntake
from infra.localcloud.deploy import AwsClients, deploy
from infra.localcloud.fidelity import make_dynamodb_atomic
from infra.localcloud.template import load_model
from midstage.adapters import aws
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.import_store import ImportFiles, ImportJobs
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import fixed
from midstage.config import CollectSettings, IdentitySettings
from midstage.models.admin import Source
from midstage.models.bulk_imports import BulkImportRequest, ImportTask
from midstage.models.messages import parse_body
from midstage.services.bulk_import import BulkImports
from tests.integration.conftest import TEMPLATE

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ROWS = int(os.environ.get("BULK_IMPORT_ROWS", "200000"))
PART_BYTES = 8 * 1024 * 1024  # the function's default
PEOPLE = 50_000
MAPPING = {"email": "email", "order_id": "order", "revenue": "amount", "currency": "currency", "timestamp": "at"}


def orders_csv(rows: int) -> bytes:
    lines = ["email,order,amount,currency,at"]
    for n in range(rows):
        amount = "lots" if n % 10_000 == 7 else f"{10 + n % 90}.{n % 100:02d}"
        lines.append(f"buyer{n % PEOPLE}@example.com,o-{n},{amount},USD,2026-11-{1 + n % 28:02d}T10:00:00Z")
    return ("\n".join(lines) + "\n").encode()


class Tasks:
    """The import queue, kept in memory: the bench runs each task as the function would."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send_bodies(self, bodies: Any, delay_seconds: int = 0) -> None:
        self.bodies.extend(bodies)


def run_all(imports: BulkImports, tasks: Tasks) -> tuple[float, float]:
    """Seconds spent planning, and running every part."""
    started = time.perf_counter()
    plan = parse_body(ImportTask, tasks.bodies.pop(0))
    imports.plan(plan.import_id)
    planned = time.perf_counter()
    while tasks.bodies:
        task = parse_body(ImportTask, tasks.bodies.pop(0))
        assert task.part is not None
        imports.run_part(task.import_id, task.part)
    return planned - started, time.perf_counter() - planned


def main() -> None:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    data = orders_csv(ROWS)
    print(f"   {ROWS:,} order rows, {len(data) / 1e6:.1f} MB, parts of {PART_BYTES // 1024 // 1024} MiB")
    make_dynamodb_atomic()
    with mock_aws():
        aws._client.cache_clear()
        model = load_model(TEMPLATE)
        clients = AwsClients(None, model.region)  # type: ignore[arg-type]
        deployment = deploy(model, clients)
        outputs = model.outputs
        bucket, data_table = outputs["ArchiveBucketName"], outputs["DataTableName"]
        ingest_url = deployment.queue_urls[next(q.arn for q in model.queues if q.logical_id == "IngestQueue")]
        config = ConfigStore(outputs["ConfigTableName"], cache_seconds=600)
        source = config.create_source(
            Source(id="src_bench", name="warehouse", write_key="wk_bench", created_at="2026-11-22T10:00:00Z")
        )
        clients.s3().put_object(Bucket=bucket, Key=f"imports/{source.id}/orders.csv", Body=data)
        settings = CollectSettings(
            data_table=data_table, config_table=outputs["ConfigTableName"], ingest_queue_url=ingest_url
        )
        request = BulkImportRequest.model_validate(
            {
                "sourceId": source.id,
                "kind": "orders",
                "format": "csv",
                "mapping": MAPPING,
                "s3Key": f"imports/{source.id}/orders.csv",
            }
        )
        for label, intake, handoff in (
            ("in-memory ports", MemoryIntake(), EncodingHandoff()),
            ("moto (S3, SQS, DynamoDB)", ProfileStore(data_table), SqsHandoff(ingest_url)),
        ):
            tasks = Tasks()
            imports = BulkImports(
                ImportJobs(data_table),
                ImportFiles(bucket),
                tasks,
                config,
                intake,  # type: ignore[arg-type]
                handoff,  # type: ignore[arg-type]
                settings,
                IdentitySettings(),
                clock=fixed(fixed_now()),
                part_bytes=PART_BYTES,
            )
            started = imports.create(request)
            planning, parts = run_all(imports, tasks)
            done = imports.progress(started["importId"])
            assert done["status"] == "done", done
            assert done["rowsRead"] == ROWS, done
            print(
                f"   {label:<26} {ROWS / (planning + parts):>8,.0f} rows/s"
                f"  (plan {planning:.1f} s, {done['parts']} parts {parts:.1f} s;"
                f" accepted {done['accepted']:,}, rejected {done['rejected']:,})"
            )
        aws._client.cache_clear()


def fixed_now() -> datetime:
    return NOW


if __name__ == "__main__":
    main()
