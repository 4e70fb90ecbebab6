"""Bulk imports of profiles, orders and offline conversions, in parts.

An import starts from the admin API (POST /v1/imports) or from a file dropped under
`imports/{sourceId}/` in the bucket; either way it is one job and one `import.plan` task. The
plan reads the file once, finds its parts (logic/imports/bulk.py) and queues one `import.part`
task each. A part reads its byte range, maps each row to a call, and sends the calls through the
tracking API's own intake (validation and enrichment, quarantine with reasons, hand-off to the
profile updater, which resolves identities and dedupes by messageId), then records its counts
once (adapters/import_store.py).

What a crash costs: a part that fails before recording is redelivered by its queue and runs again
from its start. The calls it had handed off already are sent again with the same messageIds,
which the profile updater absorbs; its counts are recorded only by the run that finishes it. A
plan that runs again finds the layout made and re-queues only the parts not finished.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from midstage.clock import Clock
from midstage.config import CollectSettings, IdentitySettings
from midstage.errors import Forbidden, ImportRefused, InvalidInput, MidstageError, NotFound, describe
from midstage.logic import collect
from midstage.logic.imports import bulk
from midstage.logic.imports.model import RowProblem
from midstage.logic.text import printable
from midstage.models.admin import Source
from midstage.models.bulk_imports import BulkImportRequest, BulkMapping, ImportTask, Sidecar
from midstage.observability import logger
from midstage.services.collect import Handoff, Intake, admit

DROP_PREFIX = "imports/"
# Files sent inline to the API are kept here: outside the drop prefix, so they start nothing.
INLINE_PREFIX = "import-uploads/"
SIDECAR_SUFFIX = ".mapping.json"
SOURCE_SIDECAR = "_mapping.json"
MAX_SIDECAR_BYTES = 64 * 1024
# Calls handed off together: one intake round (validation, quarantine, hand-off) per this many rows.
BATCH_ROWS = 500
DEFAULT_PART_BYTES = 8 * 1024 * 1024
# The first bytes of a CSV read when an import is asked for, to check its header against the mapping.
HEAD_BYTES = 64 * 1024


class ImportJobs(Protocol):
    def create(self, import_id: str, doc: Mapping[str, Any], now: datetime) -> bool: ...
    def get(self, import_id: str) -> dict[str, Any] | None: ...
    def set_layout(self, import_id: str, layout: Mapping[str, Any], parts: int, now: datetime) -> None: ...
    def fail(self, import_id: str, reason: str, now: datetime) -> None: ...
    def finish_part(
        self, import_id: str, part: int, counts: Mapping[str, int], errors: Sequence[Mapping[str, Any]], now: datetime
    ) -> bool: ...
    def finished_parts(self, import_id: str) -> list[dict[str, Any]]: ...
    def is_finished(self, import_id: str, part: int) -> bool: ...


class ImportFiles(Protocol):
    def chunks(self, key: str) -> Iterator[bytes]: ...
    def read_range(self, key: str, start: int, end: int) -> bytes: ...
    def read_small(self, key: str, limit: int) -> bytes | None: ...
    def exists(self, key: str) -> bool: ...
    def put(self, key: str, body: bytes) -> None: ...


class Tasks(Protocol):
    def send_bodies(self, bodies: Sequence[str], delay_seconds: int = 0) -> None: ...


class ImportSources(Protocol):
    def source_by_id(self, source_id: str) -> Source | None: ...


@dataclass
class PartResult:
    rows_read: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    recorded: bool = False  # False when another run had recorded this part already

    def counts(self) -> dict[str, int]:
        return {"rows_read": self.rows_read, "accepted": self.accepted, "rejected": self.rejected}


class BulkImports:
    def __init__(
        self,
        jobs: ImportJobs,
        files: ImportFiles,
        tasks: Tasks,
        sources: ImportSources,
        intake_store: Intake,
        handoff: Handoff,
        settings: CollectSettings,
        identity: IdentitySettings,
        *,
        clock: Clock,
        part_bytes: int = DEFAULT_PART_BYTES,
    ) -> None:
        self.jobs = jobs
        self.files = files
        self.tasks = tasks
        self.sources = sources
        self.intake_store = intake_store
        self.handoff = handoff
        self.settings = settings
        self.identity = identity
        self.clock = clock
        self.part_bytes = part_bytes

    # ------------------------------------------------------------------------ starting
    def create(self, request: BulkImportRequest) -> dict[str, Any]:
        """POST /v1/imports: check the source and the file, record the import, queue its plan."""
        source = self.sources.source_by_id(request.sourceId)
        if source is None:
            raise NotFound(f"no source '{request.sourceId}'", code="unknown_source")
        if not source.enabled:
            raise Forbidden("this source is disabled", code="source_disabled")
        mapping, fmt, whose = self._reading(source, request)
        import_id = "bimp_" + secrets.token_hex(10)
        if request.s3Key is not None:
            if not self.files.exists(request.s3Key):
                raise NotFound(f"no file '{request.s3Key[:200]}' in the bucket", code="import_file_not_found")
            key, file = request.s3Key, request.s3Key
            head = (self.files.read_small(key, HEAD_BYTES) or b"") if fmt == "csv" else b""
        else:
            raw = _inline_bytes(request)
            key = f"{INLINE_PREFIX}{request.sourceId}/{import_id}"
            file = f"inline:{hashlib.sha256(raw).hexdigest()[:32]}"
            head = raw[:HEAD_BYTES] if fmt == "csv" else b""
        header = bulk.head_header(head) if head else None
        missing = bulk.missing_columns(mapping, header) if header is not None else []
        if header is not None and missing:  # told now, not as a failed import later
            raise InvalidInput(bulk.unknown_columns(missing, header, whose), code="unknown_columns")
        if request.s3Key is None:
            self.files.put(key, raw)
        doc = _doc(import_id, source.id, request.kind, fmt, mapping, key, file, "api")
        self._start(import_id, doc)
        return self.progress(import_id)

    @staticmethod
    def _reading(source: Source, request: BulkImportRequest) -> tuple[BulkMapping, str, str]:
        """The mapping and format an import goes by: the request's, else those the source keeps
        for its kind; and how an error names the mapping."""
        stored = source.imports.get(request.kind)
        if request.mapping is not None:
            mapping, whose = request.mapping, "the mapping"
        elif stored is not None:
            mapping, whose = stored.mapping, f"the source's {request.kind} mapping (imports.{request.kind})"
        else:
            raise InvalidInput(
                f"give `mapping`, or keep one on the source for {request.kind} imports "
                f"(PATCH /v1/sources/{source.id} with `imports.{request.kind}`)",
                code="no_import_mapping",
            )
        fmt: str | None = request.format or (stored.format if stored else None)
        fmt = fmt or (bulk.format_from_name(request.s3Key) if request.s3Key else None)
        if fmt is None:
            raise InvalidInput(
                "give `format` (csv or jsonl): neither the source's mapping nor the file's name tells it",
                code="import_format_unknown",
            )
        return mapping, fmt, whose

    def start_from_drop(self, key: str, etag: str) -> str | None:
        """A file created under `imports/{sourceId}/`: the import it starts (the same one however
        often the drop is notified), or None when the object is not an import file."""
        source_id, _, name = key.removeprefix(DROP_PREFIX).partition("/")
        if not key.startswith(DROP_PREFIX) or not name or name.endswith(SIDECAR_SUFFIX) or name == SOURCE_SIDECAR:
            return None
        source = self.sources.source_by_id(source_id) if _plain_id(source_id) else None
        if source is None:
            logger.warning("file dropped under an unknown source's prefix", source=source_id[:64])
            return None
        import_id = "bimp_" + hashlib.sha256(f"{key}\n{etag}".encode()).hexdigest()[:20]
        try:
            sidecar = self._sidecar(key, source)
            fmt = sidecar.format or bulk.format_from_name(key)
            if fmt is None:
                raise ImportRefused("the file's format is neither given by its mapping nor told by its name")
            doc = _doc(import_id, source_id, sidecar.kind, fmt, sidecar.mapping, key, key, "s3")
            if not source.enabled:
                raise ImportRefused("this source is disabled")
        except MidstageError as error:
            # Recorded as a failed import, so that GET /v1/imports/{id} tells why nothing happened.
            doc = _doc(import_id, source_id, None, None, None, key, key, "s3")
            if self.jobs.create(import_id, doc, self.clock()):
                self.jobs.fail(import_id, error.message, self.clock())
            logger.warning("dropped file refused", import_id=import_id, reason=error.message)
            return import_id
        self._start(import_id, doc)
        return import_id

    def _sidecar(self, key: str, source: Source) -> Sidecar:
        """How a dropped file is read: its own sidecar, else the source's `_mapping.json`, else a
        mapping kept on the source (the kind named by the file's folder, `imports/{sourceId}/orders/...`,
        or the source's only one)."""
        for where in (key + SIDECAR_SUFFIX, f"{DROP_PREFIX}{source.id}/{SOURCE_SIDECAR}"):
            raw = self.files.read_small(where, MAX_SIDECAR_BYTES)
            if raw is None:
                continue
            try:
                return Sidecar.model_validate_json(raw)
            except ValidationError as error:
                raise ImportRefused(f"the mapping {where} is not valid: {describe(error, 'mapping')}") from error
        folder = key.removeprefix(f"{DROP_PREFIX}{source.id}/").partition("/")
        kinds = [folder[0]] if folder[1] and folder[0] in source.imports else sorted(source.imports)
        if len(kinds) == 1:
            stored = source.imports[kinds[0]]
            return Sidecar(kind=kinds[0], format=stored.format, mapping=stored.mapping)
        if kinds:
            raise ImportRefused(
                f"the source keeps mappings for {', '.join(kinds)}: drop the file under "
                f"{DROP_PREFIX}{source.id}/<kind>/ to say which, or put {key + SIDECAR_SUFFIX}"
            )
        raise ImportRefused(
            f"no mapping for this file: put {key + SIDECAR_SUFFIX} or {DROP_PREFIX}{source.id}/{SOURCE_SIDECAR} "
            "first, or keep one on the source (`imports` of /v1/sources)"
        )

    def _start(self, import_id: str, doc: Mapping[str, Any]) -> None:
        created = self.jobs.create(import_id, doc, self.clock())
        if created:
            self.tasks.send_bodies([ImportTask(kind="import.plan", import_id=import_id).body()])

    # ------------------------------------------------------------------------ planning
    def plan(self, import_id: str) -> int:
        """Find the parts (once) and queue those not finished; returns how many were queued."""
        job = self.jobs.get(import_id)
        if job is None or job["status"] == "failed":
            return 0
        if job["layout"] is None:
            try:
                gzip, stream = self._stream(job["key"])
                layout = bulk.plan(stream, job["format"], self.part_bytes)
                missing = bulk.missing_columns(BulkMapping.model_validate(job["mapping"]), layout.header or [])
                if layout.header is not None and missing:
                    raise ImportRefused(bulk.unknown_columns(missing, layout.header, "the mapping"))
            except ImportRefused as error:
                self.jobs.fail(import_id, error.message, self.clock())
                return 0
            described = {
                "header": layout.header,
                "size": layout.size,
                "lines": layout.lines,
                "gzip": gzip,
                "parts": [[p.start, p.end, p.first_line] for p in layout.parts],
            }
            self.jobs.set_layout(import_id, described, len(layout.parts), self.clock())
            job = self.jobs.get(import_id)
            assert job is not None
            assert job["layout"] is not None
        finished = {part["part"] for part in self.jobs.finished_parts(import_id)}
        waiting = [i for i in range(job["parts"]) if i not in finished]
        for start in range(0, len(waiting), 10):
            self.tasks.send_bodies(
                [
                    ImportTask(kind="import.part", import_id=import_id, part=i).body()
                    for i in waiting[start : start + 10]
                ]
            )
        return len(waiting)

    def _stream(self, key: str) -> tuple[bool, Iterator[bytes]]:
        """Whether the file is gzip'd (told by its first bytes, not its name), and its text."""
        chunks = self.files.chunks(key)
        first = next(chunks, b"")
        whole = itertools.chain([first], chunks)
        gzip = bulk.is_gzip(first)
        return gzip, bulk.gunzipped(whole) if gzip else whole

    # ------------------------------------------------------------------------ parts
    def run_part(self, import_id: str, part: int) -> PartResult:
        job = self.jobs.get(import_id)
        if job is None or job["layout"] is None or job["status"] == "failed":
            raise NotFound(f"import {import_id} has no part {part} to run", code="not_found")
        layout = job["layout"]
        if not 0 <= part < len(layout["parts"]):
            raise NotFound(f"import {import_id} has no part {part}", code="not_found")
        if self.jobs.is_finished(import_id, part):
            return PartResult()  # a redelivery of a part recorded already: nothing to redo
        start, end, first_line = layout["parts"][part]
        spec = bulk.Part(start, end, first_line)
        if layout["gzip"]:
            data = bulk.byte_range(bulk.gunzipped(self.files.chunks(job["key"])), start, end)
        else:
            data = self.files.read_range(job["key"], start, end)
        mapping = BulkMapping.model_validate(job["mapping"])
        origin = bulk.Origin(job["source_id"], job["file"], job["kind"], job["created_at"])
        source = self.sources.source_by_id(job["source_id"])
        if source is None:
            raise NotFound(f"the source '{job['source_id']}' no longer exists", code="unknown_source")
        # An import is paced by its parts, not by the per-second limit senders of live events keep to.
        source = source.model_copy(update={"rate_limit": None})
        now = self.clock()
        result = PartResult()
        rejections: list[collect.Rejection] = []
        batch: list[tuple[int, dict[str, Any]]] = []
        for row in bulk.rows(data, job["format"], spec, layout["header"]):
            result.rows_read += 1
            if row.values is None:
                rejections.append(collect.Rejection(row.line, "invalid_row", row.problem, ""))
                continue
            try:
                batch.append((row.line, bulk.to_call(row.values, row.line, mapping, origin)))
            except RowProblem as error:
                rejections.append(collect.Rejection(row.line, "invalid_row", str(error), _excerpt(row.values)))
            if len(batch) + len(rejections) >= BATCH_ROWS:
                self._admit(batch, rejections, source, job["kind"], now, result)
                batch, rejections = [], []
        self._admit(batch, rejections, source, job["kind"], now, result)
        result.errors.sort(key=lambda e: e["line"])
        del result.errors[bulk.MAX_LISTED_ERRORS :]
        result.recorded = self.jobs.finish_part(import_id, part, result.counts(), result.errors, self.clock())
        return result

    def _admit(
        self,
        batch: list[tuple[int, dict[str, Any]]],
        rejections: list[collect.Rejection],
        source: Source,
        kind: str,
        now: datetime,
        result: PartResult,
    ) -> None:
        limits = collect.Limits(
            self.settings.max_event_bytes,
            self.settings.max_batch_bytes,
            self.settings.max_batch_events,
            timedelta(seconds=self.settings.future_tolerance_seconds),
        )
        meta = collect.RequestMeta(source_id=source.id, received_at=now)
        intake = collect.Intake(rejected=list(rejections))
        for line, call in batch:
            size = len(json.dumps(call, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
            outcome = collect.enrich(call, line, size, {}, meta, self.identity, limits)
            if isinstance(outcome, collect.Rejection):
                intake.rejected.append(outcome)
            else:
                intake.accepted.append(outcome)
        admit(intake, source, f"imports/{kind}", now, self.settings, self.intake_store, self.handoff)
        result.accepted += len(intake.accepted)
        result.rejected += len(intake.rejected)
        if len(result.errors) < bulk.MAX_LISTED_ERRORS:
            result.errors += [
                {"line": r.index, "code": r.code, "message": r.message}
                for r in intake.rejected[: bulk.MAX_LISTED_ERRORS - len(result.errors)]
            ]

    # ------------------------------------------------------------------------ progress
    def progress(self, import_id: str) -> dict[str, Any]:
        job = self.jobs.get(import_id) if import_id.startswith("bimp_") else None
        if job is None:
            raise NotFound(f"no import '{import_id[:64]}'", code="not_found")
        errors: list[dict[str, Any]] = []
        if job["parts_done"]:
            for part in self.jobs.finished_parts(import_id):
                errors += part["errors"]
        errors.sort(key=lambda e: e["line"])
        status = job["status"]
        if status == "running" and job["parts_done"] >= job["parts"]:
            status = "done"
        layout = job["layout"] or {}
        return {
            "importId": import_id,
            "sourceId": job["source_id"],
            "kind": job["kind"],
            "format": job["format"],
            "origin": job["origin"],
            "s3Key": job["key"],
            "status": status,
            "error": job["error"],
            "bytes": layout.get("size"),
            "parts": job["parts"],
            "partsDone": job["parts_done"],
            "rowsRead": job["rows_read"],
            "accepted": job["accepted"],
            "rejected": job["rejected"],
            "errors": errors[: bulk.MAX_LISTED_ERRORS],
            "createdAt": job["created_at"],
            "updatedAt": job["updated_at"],
        }


def _doc(
    import_id: str,
    source_id: str,
    kind: str | None,
    fmt: str | None,
    mapping: BulkMapping | None,
    key: str,
    file: str,
    origin: str,
) -> dict[str, Any]:
    return {
        "import_id": import_id,
        "source_id": source_id,
        "kind": kind,
        "format": fmt,
        "mapping": mapping.model_dump(exclude_none=True) if mapping is not None else None,
        "key": key,
        "file": file,
        "origin": origin,
    }


def _inline_bytes(request: BulkImportRequest) -> bytes:
    if request.data is not None:
        return request.data.encode("utf-8", "surrogatepass")
    assert request.data_base64 is not None
    try:
        return base64.b64decode(request.data_base64, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidInput("`data_base64` is not valid base64", code="invalid_encoding") from error


def _plain_id(source_id: str) -> bool:
    return 0 < len(source_id) <= 64 and all(c.isalnum() or c in "_-" for c in source_id) and source_id.isascii()


def _excerpt(values: Mapping[str, Any]) -> str:
    shown = json.dumps(dict(values), separators=(",", ":"), ensure_ascii=False, default=str)
    return printable(shown[: collect.QUARANTINED_PAYLOAD_BYTES])
