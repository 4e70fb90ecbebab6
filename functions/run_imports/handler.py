"""Bulk imports (services/bulk_import.py): a file dropped under `imports/{sourceId}/` in the
bucket (S3's "Object Created" event, through EventBridge) starts one; the import queue's tasks plan
it and run its parts, one per message. A Pinpoint event stream dropped under `imports/pinpoint-history/`
is replayed whole, and an offer's codes under `imports/offer-codes/<offer id>/` loaded into its pool
(drop_wiring.py). The queue also carries privacy requests (services/privacy.py)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.import_store import ImportFiles, ImportJobs
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue
from midstage.batch import RecordingBatchProcessor, failure_log, receive
from midstage.clock import Clock, from_environment
from midstage.config import ImportSettings, identity_settings
from midstage.drop_wiring import load_offer_codes, replay_pinpoint_history
from midstage.models.bulk_imports import ImportTask
from midstage.models.messages import RegulationTask
from midstage.observability import logger, tracer
from midstage.privacy_wiring import privacy_worker
from midstage.services.bulk_import import BulkImports
from midstage.services.offer_codes import DROP_PREFIX as OFFER_CODES_PREFIX
from midstage.services.pinpoint_history import DROP_PREFIX


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


processor = RecordingBatchProcessor("run-imports", failure_log, clock=lambda: _clock()())


@cache
def _imports() -> BulkImports:
    settings = ImportSettings.from_env()
    return BulkImports(
        ImportJobs(settings.data_table),
        ImportFiles(settings.import_bucket),
        MessageQueue(settings.import_queue_url),
        # Sources read fresh enough that a source created a moment ago is found.
        ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds),
        ProfileStore(settings.data_table),
        SqsHandoff(settings.ingest_queue_url),
        settings,
        identity_settings(),
        clock=_clock(),
        part_bytes=settings.import_part_bytes,
    )


def record_handler(record: SQSRecord) -> None:
    if '"regulation.run"' in record.body:  # privacy requests share the queue (services/privacy.py)
        regulate_id = receive(record, RegulationTask).regulate_id
        status = privacy_worker(ImportSettings.from_env(), _clock()).run(regulate_id)
        logger.info("privacy request", regulate_id=regulate_id, status=status)
        return
    task = receive(record, ImportTask)
    imports = _imports()
    if task.kind == "import.plan":
        queued = imports.plan(task.import_id)
        logger.info("import planned", import_id=task.import_id, parts_queued=queued)
        return
    assert task.part is not None
    result = imports.run_part(task.import_id, task.part)
    logger.info(
        "import part",
        import_id=task.import_id,
        part=task.part,
        rows=result.rows_read,
        accepted=result.accepted,
        rejected=result.rejected,
        recorded=result.recorded,
    )


def _dropped(event: dict[str, Any]) -> None:
    detail = event.get("detail") or {}
    key = str((detail.get("object") or {}).get("key") or "")
    etag = str((detail.get("object") or {}).get("eTag") or "")
    if key.startswith(DROP_PREFIX):
        replay_pinpoint_history(key, _clock()())
        return
    if key.startswith(OFFER_CODES_PREFIX):
        load_offer_codes(key, _clock()())
        return
    import_id = _imports().start_from_drop(key, etag)
    logger.info("file dropped", started=import_id)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("source") == "aws.s3":
        _dropped(event)
        return {}
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
