"""The local cloud's state on disk: what `make run` keeps across restarts.

**What is kept**: every DynamoDB item of every table, every SQS message (in flight ones come back
visible, as after a visibility timeout), EventBridge Scheduler schedules and groups created at
runtime, SNS platform applications and endpoints, S3 objects, the outbox (the last
`outbox.KEPT_MESSAGES` emails, SMS and push notifications), and the manual clock's time. What the
template declares (tables, queues, topics, rules, template schedules) is created again from the
template at every start; the state fills it.

**How**: a consistent cut every `interval_s` (2 s by default). The gate stops moto's HTTP
requests for the moment of the cut (the requests in flight finish first), so the cut is the state
of every store at one instant: what the functions running then had not yet written is missing,
exactly as if every function had been killed at that instant, which the product survives by
design (idempotent consumers, SQS redelivery). Only what changed since the previous cut is
written: DynamoDB items and SQS messages are tracked as they change (`on_item_change`,
`on_message_change`), S3 objects by their ETag, the small stores whole. A cut is one batch of
JSON lines appended to the journal and closed by a commit line, then flushed and fsynced; a batch
without its commit line (the process was killed while writing it) is ignored on restore. At a
clean stop, and after every restore, the state is compacted: a full snapshot is written to a new
file, fsynced, and a manifest renamed over the old one names it with a new, empty journal; only
then are the old files removed. So `kill -9` at any moment loses at most the last interval and
never leaves a store that cannot be read.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.s3.models import s3_backends
from moto.scheduler.models import Schedule, scheduler_backends
from moto.ses.models import Message as SesMessage
from moto.ses.models import RawMessage, TemplateMessage, ses_backends
from moto.sns.models import PlatformApplication, PlatformEndpoint, sns_backends
from moto.sqs.models import Message, sqs_backends

from infra.localcloud import dynamodb_engine, sqs_engine
from infra.localcloud import outbox as sending

LOG = logging.getLogger("infra.localcloud")
FORMAT = 1
DEFAULT_INTERVAL_S = 2.0


class Gate:
    """A readers-writer gate: moto's requests are readers, a cut is the writer (and waits for them)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self.requests: Counter[str] = Counter()  # by operation, for the health endpoint and benchmarks

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        with self._condition:
            while self._writer or self._writers_waiting:
                self._condition.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                if not self._readers:
                    self._condition.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._condition.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._condition:
                self._writer = False
                self._condition.notify_all()


def gated(app: Any, gate: Gate) -> Any:
    """moto's WSGI application with every request passing the gate."""

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET")
        operation = (
            target.rsplit(".", 1)[-1] if target else f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        )
        gate.requests[operation] += 1
        with gate.request():
            # The body is produced inside the gate: moto answers with a list, not a stream.
            return list(app(environ, start_response))

    return application


def _operation(environ: dict[str, Any]) -> str:
    """What a request does, for counting: its X-Amz-Target, else its method and first path segments."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    path = "/".join(str(environ.get("PATH_INFO", "")).split("/")[:3])
    return f"{environ.get('REQUEST_METHOD')} {path}"


@dataclass
class _Changes:
    """What changed since the last cut (filled by the engines' listeners, under the stores' locks)."""

    items: dict[str, set[tuple[Any, Any]]] = field(default_factory=dict)
    messages: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def item(self, table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> None:
        with self.lock:
            self.items.setdefault(table.name, set()).add((hash_key, range_key))

    def message(self, queue_name: str, message: Message, present: bool) -> None:
        with self.lock:
            self.messages.setdefault(queue_name, set()).add(message.id)

    def take(self) -> tuple[dict[str, set[tuple[Any, Any]]], dict[str, set[str]]]:
        with self.lock:
            items, messages = self.items, self.messages
            self.items, self.messages = {}, {}
        return items, messages


class StateStore:
    """One local cloud's state directory (`.localcloud/store/` beside the template for `run`)."""

    def __init__(
        self,
        directory: Path,
        *,
        account_id: str,
        region: str,
        gate: Gate,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock_now: Any = None,
    ) -> None:
        self.directory = directory
        self.account_id = account_id
        self.region = region
        self.gate = gate
        self.interval_s = interval_s
        self._clock_now = clock_now
        self._changes = _Changes()
        self._s3_seen: dict[tuple[str, str], str] = {}
        self._outbox_seen: dict[str, set[str]] = {"email": set(), "sms": set(), "rec": set()}
        self._small_seen = ""
        self._journal_name = ""
        self._journal: IO[str] | None = None
        self._sequence = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self.restored: dict[str, int] = {}

    # ------------------------------------------------------------------ life cycle

    def exists(self) -> bool:
        return (self.directory / "manifest.json").is_file()

    def restore(self) -> dict[str, Any] | None:
        """Load the saved state into moto (after the template's resources exist, before anything
        runs). Returns the small stores' state (the clock's time), or None if nothing was saved."""
        if not self.exists():
            return None
        manifest = json.loads((self.directory / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise RuntimeError(f"{self.directory} holds state of format {manifest.get('format')}, not {FORMAT}")
        small: dict[str, Any] = {}
        counts: dict[str, int] = {"items": 0, "messages": 0, "objects": 0, "batches": 0}
        for name in (manifest["snapshot"], manifest["journal"]):
            path = self.directory / name
            if path.exists():
                for number, batch in _committed_batches(path):
                    counts["batches"] += 1
                    self._sequence = max(self._sequence, number)
                    for line in batch:
                        self._apply(line, small, counts)
        self._apply_small(small)
        self.restored = counts
        return small

    def start(self) -> None:
        """Track changes from now on, compact what was restored, and cut every interval."""
        self.directory.mkdir(parents=True, exist_ok=True)
        dynamodb_engine.on_item_change(self._changes.item)
        sqs_engine.on_message_change(self._changes.message)
        self.compact()
        self._thread = threading.Thread(target=self._run, name="localcloud-state", daemon=True)
        self._thread.start()

    def stop(self, *, compact: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        try:
            if compact:
                self.compact()
            else:
                self.cut()
        finally:
            dynamodb_engine.remove_item_listener(self._changes.item)
            sqs_engine.remove_message_listener(self._changes.message)
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.cut()
            except Exception:
                LOG.exception("saving the local cloud's state failed; trying again in %.0f s", self.interval_s)

    # ------------------------------------------------------------------ cuts

    def cut(self) -> int:
        """Append what changed since the last cut as one committed batch; returns its line count."""
        with self._write_lock:
            with self.gate.exclusive():
                lines = self._changed_lines()
            if not lines:
                return 0
            self._sequence += 1
            lines.append({"k": "commit", "n": self._sequence, "at": time.time()})
            journal = self._open_journal()
            journal.write("".join(_dumps(line) + "\n" for line in lines))
            journal.flush()
            os.fsync(journal.fileno())
            return len(lines)

    def compact(self) -> None:
        """Write the whole state as a new snapshot with a new, empty journal (atomically)."""
        with self._write_lock:
            with self.gate.exclusive():
                self._changes.take()
                lines = list(self._all_lines())
            self._sequence += 1
            lines.append({"k": "commit", "n": self._sequence, "at": time.time()})
            snapshot = f"snapshot-{self._sequence:08d}.jsonl"
            journal = f"journal-{self._sequence:08d}.jsonl"
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(
                self.directory / snapshot,
                "".join(_dumps(line) + "\n" for line in lines),
            )
            _write_atomically(self.directory / journal, "")
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            _write_atomically(
                self.directory / "manifest.json",
                json.dumps({"format": FORMAT, "snapshot": snapshot, "journal": journal}, indent=2) + "\n",
            )
            self._journal_name = journal
            for old in self.directory.iterdir():
                if old.name.startswith(("snapshot-", "journal-")) and old.name not in (snapshot, journal):
                    old.unlink(missing_ok=True)
                if old.name.endswith(".tmp"):
                    old.unlink(missing_ok=True)
            _prune_blobs(self.directory / "blobs", {line["blob"] for line in lines if line.get("k") == "s3"})

    def _open_journal(self) -> IO[str]:
        if self._journal is None:
            self._journal = (self.directory / self._journal_name).open("a", encoding="utf-8")
        return self._journal

    def _changed_lines(self) -> list[dict[str, Any]]:
        items, messages = self._changes.take()
        lines: list[dict[str, Any]] = []
        tables = dynamodb_backends[self.account_id][self.region].tables
        for table_name, keys in items.items():
            table = tables.get(table_name)
            if table is None:
                continue
            for hash_key, range_key in keys:
                lines.append(_item_line(table, hash_key, range_key))
        queues = sqs_backends[self.account_id][self.region].queues
        for queue_name, message_ids in messages.items():
            queue = queues.get(queue_name)
            if queue is None:
                continue
            live = queue._messages.live  # type: ignore[attr-defined]
            for message_id in message_ids:
                message = live.get(message_id)
                lines.append(
                    {"k": "sqs", "q": queue_name, "id": message_id, "m": _message(message) if message else None}
                )
        lines.extend(self._s3_lines(full=False))
        lines.extend(self._outbox_lines(full=False))
        small = self._small_state()
        fingerprint = hashlib.sha256(json.dumps(small, sort_keys=True, default=str).encode()).hexdigest()
        if fingerprint != self._small_seen:
            self._small_seen = fingerprint
            lines.append({"k": "small", "state": small})
        return lines

    def _all_lines(self) -> Iterator[dict[str, Any]]:
        tables = list(dynamodb_backends[self.account_id][self.region].tables.values())
        with dynamodb_engine.holding(tables):
            for table in tables:
                for partition in list(table.items.values()):
                    entries: list[Any] = [partition] if table.range_key_attr is None else list(partition.values())
                    for item in entries:
                        yield {"k": "ddb", "tb": table.name, "key": _key(table, item), "item": _attributes(item)}
        for queue in list(sqs_backends[self.account_id][self.region].queues.values()):
            state: Any = queue._messages
            with state.lock:
                messages = list(state.live.values())
            for message in messages:
                yield {"k": "sqs", "q": queue.name, "id": message.id, "m": _message(message)}
        self._s3_seen = {}
        yield from self._s3_lines(full=True)
        yield from self._outbox_lines(full=True)
        small = self._small_state()
        self._small_seen = hashlib.sha256(json.dumps(small, sort_keys=True, default=str).encode()).hexdigest()
        yield {"k": "small", "state": small}

    # ------------------------------------------------------------------ S3

    def _s3_lines(self, *, full: bool) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        seen: dict[tuple[str, str], str] = {}
        backend = s3_backends[self.account_id]["aws"]
        for bucket in list(backend.buckets.values()):
            for key in list(bucket.keys.values()):
                if not hasattr(key, "value"):
                    continue
                etag = str(key.etag)
                seen[(bucket.name, key.name)] = etag
                if not full and self._s3_seen.get((bucket.name, key.name)) == etag:
                    continue
                body = key.value
                digest = hashlib.sha256(body).hexdigest()
                _write_blob(self.directory / "blobs", digest, body)
                meta = {"metadata": dict(key.metadata or {})}
                lines.append({"k": "s3", "b": bucket.name, "key": key.name, "blob": digest, "meta": meta})
        if not full:
            for bucket_name, key_name in set(self._s3_seen) - set(seen):
                lines.append({"k": "s3", "b": bucket_name, "key": key_name, "blob": None})
        self._s3_seen = seen
        return lines

    # ------------------------------------------------------------------ the outbox

    def _outbox_lines(self, *, full: bool) -> list[dict[str, Any]]:
        """Sent emails, SMS and what the outbox recorded beside them: new ones, and those trimmed."""
        ses = ses_backends[self.account_id][self.region]
        sns = sns_backends[self.account_id][self.region]
        current: dict[str, dict[str, Any]] = {
            "email": {str(message.id): message for message in list(ses.sent_messages) if hasattr(message, "id")},
            "sms": dict(list(sns.sms_messages.items())),
            "rec": dict(sending.recorded_items()),
        }
        shaped: dict[str, Any] = {"email": _ses_message, "sms": list, "rec": _plain}
        lines: list[dict[str, Any]] = []
        for kind, entries in current.items():
            seen = set() if full else self._outbox_seen[kind]
            for message_id, entry in entries.items():
                if message_id not in seen:
                    lines.append({"k": kind, "id": message_id, "m": shaped[kind](entry)})
            if not full:
                lines.extend({"k": kind, "id": gone, "m": None} for gone in seen - set(entries))
            self._outbox_seen[kind] = set(entries)
        return lines

    # ------------------------------------------------------------------ small stores

    def _small_state(self) -> dict[str, Any]:
        scheduler = scheduler_backends[self.account_id][self.region]
        groups = [name for name in scheduler.schedule_groups if name != "default"]
        schedules = [
            _plain(schedule.__dict__)
            for group in list(scheduler.schedule_groups.values())
            for schedule in list(group.schedules.values())
        ]
        sns = sns_backends[self.account_id][self.region]
        applications = [
            {"name": app.name, "platform": app.platform, "attributes": dict(app.attributes)}
            for app in list(sns.applications.values())
        ]
        endpoints = [
            {
                "arn": endpoint.arn,
                "id": str(endpoint.id),
                "application": endpoint.application.arn,
                "custom_user_data": endpoint.custom_user_data,
                "token": endpoint.token,
                "attributes": dict(endpoint.attributes),
            }
            for endpoint in list(sns.platform_endpoints.values())
        ]
        state: dict[str, Any] = {
            "schedule_groups": groups,
            "schedules": schedules,
            "platform_applications": applications,
            "platform_endpoints": endpoints,
        }
        if self._clock_now is not None:
            state["clock"] = self._clock_now().isoformat()
        return state

    def _apply_small(self, state: dict[str, Any]) -> None:
        if not state:
            return
        scheduler = scheduler_backends[self.account_id][self.region]
        for name in state.get("schedule_groups", []):
            if name not in scheduler.schedule_groups:
                scheduler.create_schedule_group(name=name, tags=[])
        for saved in state.get("schedules", []):
            group = scheduler.schedule_groups.get(saved["group_name"])
            if group is None:
                continue
            schedule: Any = Schedule.__new__(Schedule)
            schedule.__dict__.update(saved)
            group.schedules[schedule.name] = schedule
        sns = sns_backends[self.account_id][self.region]
        for saved in state.get("platform_applications", []):
            application = PlatformApplication(
                self.account_id, self.region, saved["name"], saved["platform"], saved["attributes"]
            )
            sns.applications[application.arn] = application
        for saved in state.get("platform_endpoints", []):
            owner = sns.applications.get(saved["application"])
            if owner is None:
                continue
            endpoint: Any = PlatformEndpoint.__new__(PlatformEndpoint)
            endpoint.__dict__.update(
                region=self.region,
                application=owner,
                custom_user_data=saved["custom_user_data"],
                token=saved["token"],
                attributes=saved["attributes"],
                id=saved["id"],
                arn=saved["arn"],
                messages=OrderedDict(),
            )
            sns.platform_endpoints[endpoint.arn] = endpoint

    # ------------------------------------------------------------------ restore

    def _apply(self, line: dict[str, Any], small: dict[str, Any], counts: dict[str, int]) -> None:
        kind = line.get("k")
        if kind == "ddb":
            table = dynamodb_backends[self.account_id][self.region].tables.get(line["tb"])
            if table is None:
                return
            hash_key = DynamoType(line["key"][0])
            range_key = DynamoType(line["key"][1]) if line["key"][1] is not None else None
            if line["item"] is None:
                table.delete_item(hash_key, range_key)
            else:
                table.put_item(line["item"], overwrite=True)
                counts["items"] += 1
        elif kind == "sqs":
            queue = sqs_backends[self.account_id][self.region].queues.get(line["q"])
            if queue is None:
                return
            state: Any = queue._messages
            existing = state.live.get(line["id"])
            if existing is not None:
                state.forget(existing)
            if line["m"] is not None:
                state.append(_restored_message(line["id"], line["m"]))
                counts["messages"] += 1
        elif kind == "s3":
            backend = s3_backends[self.account_id]["aws"]
            if line["b"] not in backend.buckets:
                return
            if line["blob"] is None:
                with contextlib.suppress(Exception):
                    backend.delete_object(line["b"], line["key"])
                return
            body = (self.directory / "blobs" / line["blob"]).read_bytes()
            stored = backend.put_object(line["b"], line["key"], body)
            stored.set_metadata(dict((line.get("meta") or {}).get("metadata") or {}), replace=True)
            counts["objects"] += 1
        elif kind == "small":
            small.clear()
            small.update(line["state"])
        elif kind == "email":
            sent = ses_backends[self.account_id][self.region].sent_messages
            sent[:] = [message for message in sent if str(getattr(message, "id", "")) != line["id"]]
            if line["m"] is not None:
                sent.append(_ses_restored(line["m"], self.account_id))
        elif kind == "sms":
            sms = sns_backends[self.account_id][self.region].sms_messages
            sms.pop(line["id"], None)
            if line["m"] is not None:
                sms[line["id"]] = tuple(line["m"])
        elif kind == "rec":
            sending.restore_recorded(line["id"], line["m"])


# ---------------------------------------------------------------------------------- items


def _key(table: Table, item: Item) -> list[Any]:
    hash_key = {item.hash_key.type: item.hash_key.value}
    range_key = {item.range_key.type: item.range_key.value} if item.range_key is not None else None
    return [hash_key, range_key]


def _attributes(item: Item) -> dict[str, Any]:
    attributes: dict[str, Any] = item.to_json()["Attributes"]
    return attributes


def _item_line(table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> dict[str, Any]:
    partition = table.items.get(hash_key)
    item: Item | None
    if partition is None:
        item = None
    elif table.range_key_attr is None:
        item = partition  # type: ignore[assignment]
    else:
        item = partition.get(range_key)
    key = [{hash_key.type: hash_key.value}, {range_key.type: range_key.value} if range_key is not None else None]
    return {"k": "ddb", "tb": table.name, "key": key, "item": _attributes(item) if item is not None else None}


# ---------------------------------------------------------------------------------- messages


def _message(message: Message) -> dict[str, Any]:
    return {
        "body": message.body,
        "attributes": message.message_attributes,
        "system": message.system_attributes,
        "sent": message.sent_timestamp,
        "delayed_until": message.delayed_until,
        "receives": message.approximate_receive_count,
        "first_receive": message.approximate_first_receive_timestamp,
        "group": message.group_id,
        "dedupe": message.deduplication_id,
        "sequence": message.sequence_number,
    }


def _restored_message(message_id: str, saved: dict[str, Any]) -> Message:
    message = Message(message_id, saved["body"], saved.get("system") or {})
    message.message_attributes = saved.get("attributes") or {}
    message.sent_timestamp = saved.get("sent")
    message.delayed_until = float(saved.get("delayed_until") or 0)
    message.approximate_receive_count = int(saved.get("receives") or 0)
    message.approximate_first_receive_timestamp = saved.get("first_receive")
    message.group_id = saved.get("group")
    message.deduplication_id = saved.get("dedupe")
    message.sequence_number = saved.get("sequence")
    message.visible_at = 0.0  # in flight when saved: visible again, as after a visibility timeout
    return message


def _ses_message(message: Any) -> dict[str, Any] | None:
    kinds: dict[Any, str] = {SesMessage: "simple", RawMessage: "raw", TemplateMessage: "template"}
    kind = kinds.get(type(message))
    if kind is None:
        return None
    fields = _plain({k: v for k, v in message.__dict__.items() if k != "account_id"})
    if kind == "raw" and isinstance(fields.get("raw_data"), bytes):
        fields["raw_data"] = {"b64": base64.b64encode(fields["raw_data"]).decode()}
    return {"kind": kind, "fields": fields}


def _ses_restored(saved: dict[str, Any], account_id: str) -> Any:
    kinds: dict[str, Any] = {"simple": SesMessage, "raw": RawMessage, "template": TemplateMessage}
    kind = kinds[saved["kind"]]
    message = kind.__new__(kind)
    fields = dict(saved["fields"])
    if isinstance(fields.get("raw_data"), dict):
        fields["raw_data"] = base64.b64decode(fields["raw_data"]["b64"])
    message.__dict__.update(fields, account_id=account_id)
    return message


def _plain(value: Any) -> Any:
    """A JSON-ready copy (moto keeps some dates as datetimes)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# ---------------------------------------------------------------------------------- files


def _dumps(line: dict[str, Any]) -> str:
    return json.dumps(line, separators=(",", ":"), default=_bytes)


def _bytes(value: Any) -> Any:
    """DynamoDB binary values are bytes in moto: kept as base64 under a marker key."""
    if isinstance(value, bytes | bytearray):
        return {"__b64__": base64.b64encode(value).decode()}
    raise TypeError(f"{type(value).__name__} is not kept in the local cloud's state")


def _undo_bytes(value: dict[str, Any]) -> Any:
    if len(value) == 1 and "__b64__" in value:
        return base64.b64decode(value["__b64__"])
    return value


def _committed_batches(path: Path) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """The journal's batches that were committed; a torn or uncommitted tail is dropped."""
    batch: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for raw in lines:
            if not raw.endswith("\n"):
                break  # the last line was being written when the process died
            try:
                line = json.loads(raw, object_hook=_undo_bytes)
            except ValueError:
                break
            if line.get("k") == "commit":
                yield int(line.get("n", 0)), batch
                batch = []
            else:
                batch.append(line)
    if batch:
        LOG.info("%s: dropped %d change(s) of a cut that was not committed", path.name, len(batch))


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _write_blob(directory: Path, digest: str, body: bytes) -> None:
    path = directory / digest
    if path.exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(digest + ".tmp")
    with temporary.open("wb") as file:
        file.write(body)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _prune_blobs(directory: Path, kept: set[str]) -> None:
    if not directory.is_dir():
        return
    for blob in directory.iterdir():
        if blob.name not in kept:
            blob.unlink(missing_ok=True)
