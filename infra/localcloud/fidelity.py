"""Where moto is looser than AWS in ways our invariants depend on, the local cloud tightens it.

DynamoDB makes each item write (and each transaction) atomic: a condition is checked and the
write applied with no other writer in between. moto's backend takes no lock, so two threads of
its server can both pass `version = :v` and both write. The profile updater's correctness
rests on that atomicity, so every item operation of the backend runs under one lock here.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

_ITEM_OPERATIONS = (
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)
_lock = threading.RLock()
_applied = False


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    return run


def make_dynamodb_atomic() -> None:
    """Serialise moto's DynamoDB item operations (idempotent; process-wide)."""
    global _applied
    if _applied:
        return
    for name in _ITEM_OPERATIONS:
        setattr(DynamoDBBackend, name, _locked(getattr(DynamoDBBackend, name)))
    _applied = True
