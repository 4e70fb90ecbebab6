"""moto's DynamoDB made atomic, and made to cost what DynamoDB costs as the table grows.

Three properties of DynamoDB that the product depends on and moto 5 does not give:

- **Atomic items and transactions.** DynamoDB checks a condition and applies the write with no
  other writer in between. moto takes no lock, so two threads of its server can both pass
  `version = :v` and both write. Every item operation here runs under its table's lock (a
  transaction or a PartiQL statement under the locks of every table it may touch, taken in name
  order, so two of them cannot deadlock).
- **A write costs the item, not the table.** moto's `TransactWriteItems` deep-copies every table
  it writes to, once per item, as its rollback backup: a profile write copied the whole DataTable
  three times. Here a transaction backs up only the items it names and puts them back if it is
  cancelled.
- **A read costs what it reads.** moto answers a `Query` by sorting every item of the table and
  keeping the partition asked for, and every `Scan` page by sorting the whole table and walking to
  the page's start key, so paging through a table grows with the square of its size. Here a query
  reads its partition, and a scan walks an index of the table's partitions kept in 256 buckets
  (moto's own segment hash, so a `Segment`/`TotalSegments` scan reads only its buckets) and starts
  each page by bisection. Pages follow that order, not moto's global sort: DynamoDB promises no
  scan order, only that a `LastEvaluatedKey` resumes after the last item returned.

moto also leaves an empty partition behind every `GetItem` of a missing key (its items are a
`defaultdict`); those are removed here so that memory follows what is stored.

Everything is installed once per process by `install()` and applies to every moto backend.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import functools
import hashlib
import inspect
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from moto.dynamodb import models as backend_module
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

BUCKETS = 256  # moto's segment hash is the first byte of an md5 of the partition key

_installed = False
_install_lock = threading.Lock()
_locks_lock = threading.Lock()
# Called with (table, hash key) under the table's lock after any item of the partition changed:
# how the local cloud's persistence learns what to write (see persistence.py).
ItemListener = Callable[[Table, DynamoType, "DynamoType | None"], None]
_listeners: list[ItemListener] = []


def on_item_change(listener: ItemListener) -> None:
    """Call `listener(table, hash_key, range_key)` after every change of an item (process-wide)."""
    _listeners.append(listener)


def remove_item_listener(listener: ItemListener) -> None:
    with contextlib.suppress(ValueError):
        _listeners.remove(listener)


def _changed(table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> None:
    for listener in list(_listeners):
        listener(table, hash_key, range_key)


# Operations on one table, named by their first argument.
_SINGLE_TABLE = ("put_item", "get_item", "update_item", "delete_item", "query", "scan")
# Operations that may touch several tables: the transaction names them, PartiQL does not.
_MULTI_TABLE = ("execute_statement", "execute_transaction", "batch_execute_statement")


def install() -> None:
    """Patch moto's DynamoDB (idempotent; process-wide)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _patch_backend()
        _patch_table()
        # moto backs a transaction up by deep-copying whole tables; the backup here is per item.
        setattr(backend_module, "copy", _CopyKeepingTables())  # noqa: B010
        _installed = True


# ------------------------------------------------------------------------------------ locking


def _table_lock(table: Table) -> threading.RLock:
    lock: threading.RLock | None = getattr(table, "_localcloud_lock", None)
    if lock is None:
        with _locks_lock:
            lock = getattr(table, "_localcloud_lock", None)
            if lock is None:
                lock = threading.RLock()
                table._localcloud_lock = lock  # type: ignore[attr-defined]
    return lock


@contextlib.contextmanager
def holding(tables: Iterable[Table]) -> Iterator[None]:
    """Hold the locks of these tables (in name order): no item of them changes meanwhile."""
    with _holding(tables):
        yield


@contextlib.contextmanager
def _holding(tables: Iterable[Table]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for table in sorted(set(tables), key=lambda t: (t.name, id(t))):
            stack.enter_context(_table_lock(table))
        yield


def _named_table(backend: DynamoDBBackend, name: Any) -> Table | None:
    try:
        return backend.get_table(name)
    except Exception:  # an unknown table: let moto answer with its own error
        return None


def _patch_backend() -> None:
    DynamoDBBackend.update_item = _reporting_update(DynamoDBBackend.update_item)  # type: ignore[method-assign]
    for name in _SINGLE_TABLE:
        setattr(DynamoDBBackend, name, _on_one_table(getattr(DynamoDBBackend, name)))
    for name in _MULTI_TABLE:
        setattr(DynamoDBBackend, name, _on_every_table(getattr(DynamoDBBackend, name)))
    DynamoDBBackend.transact_write_items = _transaction(DynamoDBBackend.transact_write_items)  # type: ignore[method-assign]


def _reporting_update(method: Callable[..., Any]) -> Callable[..., Any]:
    """UpdateItem changes an existing item in place, past Table.put_item: report it here."""

    @functools.wraps(method)
    def run(self: DynamoDBBackend, table_name: Any, *args: Any, **kwargs: Any) -> Any:
        item = method(self, table_name, *args, **kwargs)
        if item is not None:
            _changed(self.get_table(table_name), item.hash_key, item.range_key)
        return item

    return run


def _on_one_table(method: Callable[..., Any]) -> Callable[..., Any]:
    # moto answers GetItem with the stored item itself, turned into JSON after this returns: a
    # transaction changing it meanwhile would break that ("dictionary changed size"), so the
    # answer is a copy taken under the lock.
    snapshot = method.__name__ == "get_item"

    @functools.wraps(method)
    def run(self: DynamoDBBackend, table_name: Any, *args: Any, **kwargs: Any) -> Any:
        table = _named_table(self, table_name)
        if table is None:
            return method(self, table_name, *args, **kwargs)
        with _table_lock(table):
            answer = method(self, table_name, *args, **kwargs)
            return copy.deepcopy(answer) if snapshot and answer is not None else answer

    return run


def _on_every_table(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with _holding(list(self.tables.values())):
            return method(self, *args, **kwargs)

    return run


# ------------------------------------------------------------------------------- transactions


class _CopyKeepingTables:
    """`copy` as moto's DynamoDB backend module sees it: a table is not copied (its rollback is
    done per item by `_transaction`), anything else is."""

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _transaction(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> Any:
        named = [op.get("TableName") for entry in transact_items for op in entry.values() if isinstance(op, dict)]
        tables = [table for name in named if name and (table := _named_table(self, name)) is not None]
        with _holding(tables):
            backup = _items_before(self, transact_items)
            try:
                return method(self, transact_items)
            except BaseException:
                # moto applied the writes one by one and "restored" its (uncopied) tables: put
                # back what each named item was. Newest first, so a key named twice ends as it began.
                for table, hash_key, range_key, item in reversed(backup):
                    _set_item(table, hash_key, range_key, item)
                raise

    return run


_Backup = tuple[Table, DynamoType, DynamoType | None, Item | None]


def _items_before(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[_Backup]:
    backup: list[_Backup] = []
    for entry in transact_items:
        for kind, op in entry.items():
            if not isinstance(op, dict):
                continue
            table = _named_table(backend, op.get("TableName"))
            if table is None:
                continue
            key = op.get("Item") if kind == "Put" else op.get("Key")
            try:
                hash_key = DynamoType(key[table.hash_key_attr])  # type: ignore[index]
                range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None  # type: ignore[index]
            except (KeyError, TypeError, IndexError):
                continue  # moto refuses the operation before it writes anything
            backup.append((table, hash_key, range_key, copy.deepcopy(_peek(table, hash_key, range_key))))
    return backup


def _peek(table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Item | None:
    partition = table.items.get(hash_key)
    if partition is None:
        return None
    if table.range_key_attr is None:
        return partition  # type: ignore[return-value]
    return partition.get(range_key)


def _set_item(table: Table, hash_key: DynamoType, range_key: DynamoType | None, item: Item | None) -> None:
    if table.range_key_attr is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item  # type: ignore[assignment]
    else:
        partition = table.items.get(hash_key)
        if item is not None:
            table.items[hash_key][range_key] = item
        elif partition is not None:
            partition.pop(range_key, None)
            if not partition:
                del table.items[hash_key]
    _partition_changed(table, hash_key)
    _changed(table, hash_key, range_key)


# ---------------------------------------------------------------------------- reads that scale


class _Partitions:
    """The table's partition keys, in BUCKETS buckets by moto's segment hash, each sorted."""

    def __init__(self, table: Table) -> None:
        self.buckets: list[list[Any]] = [[] for _ in range(BUCKETS)]
        self.keys: dict[Any, DynamoType] = {}
        for hash_key in list(table.items):
            if table.items[hash_key]:
                self.add(hash_key)
        for bucket in self.buckets:
            bucket.sort()

    @staticmethod
    def bucket_of(hash_key: DynamoType) -> int:
        return hashlib.md5(str(hash_key.value).encode("utf8"), usedforsecurity=False).digest()[0]

    def add(self, hash_key: DynamoType) -> None:
        order = hash_key.cast_value
        if order in self.keys:
            return
        self.keys[order] = hash_key
        bisect.insort(self.buckets[self.bucket_of(hash_key)], order)

    def discard(self, hash_key: DynamoType) -> None:
        order = hash_key.cast_value
        if self.keys.pop(order, None) is None:
            return
        bucket = self.buckets[self.bucket_of(hash_key)]
        position = bisect.bisect_left(bucket, order)
        if position < len(bucket) and bucket[position] == order:
            del bucket[position]

    def items(self, table: Table, segments: tuple[Any, Any], start: dict[str, Any] | None) -> Iterator[Item]:
        """The items of the scan's segment in bucket order, strictly after `start` if given."""
        segment, total = segments
        wanted = [b for b in range(BUCKETS) if total is None or b % total == segment]
        start_hash = DynamoType(start[table.hash_key_attr]) if start else None
        start_range = (
            DynamoType(start[table.range_key_attr])
            if start and table.range_key_attr and table.range_key_attr in start
            else None
        )
        if start_hash is not None:
            first = self.bucket_of(start_hash)
            wanted = [b for b in wanted if b >= first]
        for bucket_index in wanted:
            bucket = self.buckets[bucket_index]
            position = 0
            if start_hash is not None and bucket_index == self.bucket_of(start_hash):
                position = bisect.bisect_left(bucket, start_hash.cast_value)
                if position < len(bucket) and bucket[position] == start_hash.cast_value:
                    yield from _partition_items(table, self.keys[bucket[position]], after=start_range)
                    position += 1
            # The table may change between pages (never within one: the scan holds its lock).
            for order in bucket[position:]:
                yield from _partition_items(table, self.keys[order], after=None)


def _partition_items(table: Table, hash_key: DynamoType, after: DynamoType | None) -> Iterator[Item]:
    partition = table.items.get(hash_key)
    if not partition:
        return
    if table.range_key_attr is None:
        yield partition  # type: ignore[misc]
        return
    ranges = sorted(partition)
    if after is not None:
        ranges = ranges[bisect.bisect_right(ranges, after) :]
    for range_key in ranges:
        yield partition[range_key]


def _partitions(table: Table) -> _Partitions:
    index: _Partitions | None = getattr(table, "_localcloud_partitions", None)
    if index is None:
        index = _Partitions(table)
        table._localcloud_partitions = index  # type: ignore[attr-defined]
    return index


def _partition_changed(table: Table, hash_key: DynamoType) -> None:
    index: _Partitions | None = getattr(table, "_localcloud_partitions", None)
    if index is None:
        return
    if table.items.get(hash_key):
        index.add(hash_key)
    else:
        index.discard(hash_key)


@contextlib.contextmanager
def _reading(table: Table, items: Iterable[Item]) -> Iterator[None]:
    """moto's query and scan read `self.all_items()`: give them only what they need to read."""
    setattr(table, "all_items", lambda: items)  # noqa: B010
    try:
        yield
    finally:
        del table.all_items


def _patch_table() -> None:
    original_query = Table.query
    query_signature = inspect.signature(original_query)
    original_scan = Table.scan
    scan_signature = inspect.signature(original_scan)
    original_put = Table.put_item
    original_delete = Table.delete_item
    original_get = Table.get_item

    @functools.wraps(original_query)
    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        bound = query_signature.bind(self, *args, **kwargs).arguments
        hash_key = bound.get("hash_key")
        if bound.get("index_name") or hash_key is None:
            return original_query(self, *args, **kwargs)
        with _reading(self, list(_partition_items(self, hash_key, after=None))):
            return original_query(self, *args, **kwargs)

    @functools.wraps(original_scan)
    def scan(self: Table, *args: Any, **kwargs: Any) -> Any:
        bound = scan_signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        if arguments.get("index_name"):
            return original_scan(self, *args, **kwargs)
        start = arguments.get("exclusive_start_key")
        items = _partitions(self).items(self, arguments.get("segments") or (None, None), start)
        # The start is applied by the walk above, in its own order; moto's would skip by its sort.
        arguments["exclusive_start_key"] = None
        arguments.pop("self")
        with _reading(self, items):
            return original_scan(self, **arguments)

    @functools.wraps(original_put)
    def put_item(self: Table, *args: Any, **kwargs: Any) -> Item:
        item: Item = original_put(self, *args, **kwargs)
        _partition_changed(self, item.hash_key)
        _changed(self, item.hash_key, item.range_key)
        return item

    @functools.wraps(original_delete)
    def delete_item(self: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Item | None:
        item: Item | None = original_delete(self, hash_key, range_key)
        partition = self.items.get(hash_key)
        if partition is not None and not partition:
            del self.items[hash_key]
        _partition_changed(self, hash_key)
        if item is not None:
            _changed(self, hash_key, range_key)
        return item

    @functools.wraps(original_get)
    def get_item(self: Table, hash_key: DynamoType, range_key: DynamoType | None = None, *args: Any) -> Item | None:
        existed = hash_key in self.items
        item: Item | None = original_get(self, hash_key, range_key, *args)
        if not existed and hash_key in self.items and not self.items[hash_key]:
            del self.items[hash_key]  # moto's defaultdict made an empty partition for a missing key
        return item

    for name, patched in (
        ("query", query),
        ("scan", scan),
        ("put_item", put_item),
        ("delete_item", delete_item),
        ("get_item", get_item),
    ):
        setattr(Table, name, patched)


# ---------------------------------------------------------------------------------- time to live

_FIVE_YEARS_S = 5 * 365 * 24 * 3600


def expire(backend: DynamoDBBackend, now_s: float, buckets: int) -> int:
    """Delete expired items in the next `buckets` buckets of every table whose TTL is enabled.

    DynamoDB deletes an item some time after the Number of epoch seconds in its TTL attribute has
    passed (items dated more than five years back are left alone); moto never does, so markers,
    rate windows and quarantine would pile up for as long as the local cloud runs. Called
    repeatedly, this walks each table's partitions a slice at a time. Returns how many it deleted.
    """
    deleted = 0
    for table in list(backend.tables.values()):
        ttl = getattr(table, "ttl", None) or {}
        attribute = ttl.get("AttributeName")
        if ttl.get("TimeToLiveStatus") != "ENABLED" or not attribute:
            continue
        with _table_lock(table):
            index = _partitions(table)
            cursor: int = getattr(table, "_localcloud_ttl_cursor", 0)
            for step in range(buckets):
                for order in list(index.buckets[(cursor + step) % BUCKETS]):
                    hash_key = index.keys.get(order)
                    if hash_key is None:
                        continue
                    for item in list(_partition_items(table, hash_key, after=None)):
                        value = item.attrs.get(attribute)
                        if value is None or value.type != "N":
                            continue
                        try:
                            expires = float(value.value)
                        except ValueError:
                            continue
                        if now_s - _FIVE_YEARS_S < expires < now_s:
                            table.delete_item(item.hash_key, item.range_key)
                            deleted += 1
            table._localcloud_ttl_cursor = (cursor + buckets) % BUCKETS  # type: ignore[attr-defined]
    return deleted
