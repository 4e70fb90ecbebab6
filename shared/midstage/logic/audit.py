"""The audit log's chain, as pure functions: what an entry holds, its canonical form and hash,
what a route's call leaves in it, and the walk that finds the first broken link.

Each entry's `hash` is sha256 over the canonical JSON of every other field, `prev` included,
and `prev` is the hash of the entry before it (`GENESIS` for the first). Changing a field of an
entry changes its hash; recomputing that hash breaks the next entry's `prev`; deleting or
reordering entries breaks the unbroken run of sequence numbers or a `prev`. So an entry can be
altered undetected only by rewriting every entry after it and the chain's head together, and a
copy of the head kept elsewhere (docs/privacy.md, "Audit log") catches even that.

An entry holds no personal data: the caller's key id and role, ids of what was touched, and
digests. A path parameter of a route that names a person (an identifier such as
`email:ann@example.com`, an address) is kept as its digest, never as written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

GENESIS = "0" * 64
# The fields every entry has, in the order the API shows them; `hash` covers all the others.
FIELDS = (
    "seq",
    "at",
    "actor",
    "role",
    "requestId",
    "correlationId",
    "kind",
    "action",
    "target",
    "bodyDigest",
    "resultDigest",
    "status",
    "prev",
)
KINDS = ("write", "read")


def digest(data: str | bytes) -> str:
    """`sha256:<hex>` of text (as UTF-8, surrogates escaped) or bytes."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash is taken over: every field but `hash`, as JSON with sorted keys,
    no spaces, and non-ASCII escaped (one spelling for one entry, whatever wrote it)."""
    fields = {name: value for name, value in entry.items() if name != "hash"}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def chained(fields: Mapping[str, Any], seq: int, prev: str) -> dict[str, Any]:
    """The entry `fields` become as number `seq` after the entry hashed `prev`."""
    entry = {**fields, "seq": seq, "prev": prev}
    entry["hash"] = entry_hash(entry)
    return entry


def target(params: Mapping[str, str], *, personal: bool) -> str | None:
    """What a call touched, from its path parameters (`name=value`, `/`-joined in the route's
    order). On a route that names a person every value is kept as its digest: a profile ref may
    be an email address, a suppression's path is one."""
    if not params:
        return None
    return "/".join(f"{name}={digest(plain(value)) if personal else value}" for name, value in params.items())


def plain(value: str) -> str:
    """A path value as the services read it: percent-decoded and trimmed, so one person is one
    target however a client spelled the path."""
    return unquote(value).strip()


def audited(method: str, *, personal: bool) -> bool:
    """Every write is recorded; a read only when it returns a person's data."""
    return method.upper() != "GET" or personal


@dataclass(frozen=True)
class Break:
    """The first link that does not hold: the entry's number (or the head's) and why."""

    seq: int
    reason: str


@dataclass(frozen=True)
class Verdict:
    checked: int
    last_seq: int
    last_hash: str
    broken: Break | None


def verify(entries: Iterable[Mapping[str, Any]], head: Mapping[str, Any] | None) -> Verdict:
    """Walk `entries` oldest first against the chain's rules and its `head` (the last seq and
    hash recorded with the newest append); the first link that does not hold is the verdict."""
    expected_seq, prev, checked = 1, GENESIS, 0
    for entry in entries:
        seq = entry.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return Verdict(checked, expected_seq - 1, prev, Break(expected_seq, "an entry has no sequence number"))
        if seq != expected_seq:
            why = (
                f"entry {expected_seq} is missing (the next one found is {seq})"
                if seq > expected_seq
                else "out of order"
            )
            return Verdict(checked, expected_seq - 1, prev, Break(expected_seq if seq > expected_seq else seq, why))
        if entry.get("prev") != prev:
            return Verdict(checked, seq - 1, prev, Break(seq, "its prev is not the hash of the entry before it"))
        if entry.get("hash") != entry_hash(entry):
            return Verdict(checked, seq - 1, prev, Break(seq, "its hash does not match its content"))
        expected_seq, prev, checked = seq + 1, str(entry["hash"]), checked + 1
    last = expected_seq - 1
    if head is not None:
        if int(head.get("seq", 0)) > last:
            return Verdict(
                checked, last, prev, Break(last + 1, f"the chain ends at {last}, its head says {head['seq']}")
            )
        if int(head.get("seq", 0)) != last or head.get("hash") != prev:
            return Verdict(checked, last, prev, Break(last, "the chain's head does not match its last entry"))
    elif last:
        return Verdict(checked, last, prev, Break(last, "the chain has entries but no head"))
    return Verdict(checked, last, prev, None)
