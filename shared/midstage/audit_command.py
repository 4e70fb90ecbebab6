"""`python -m midstage.cli audit verify --table <AuditTableName>`: the audit log's chain checked
straight from its table with the operator's own credentials, without the API (docs/privacy.md,
"Audit log").

It walks every entry from the first to the head as read when it starts, and prints the verdict
as JSON: `valid`, entries checked, the head, and the first broken link (its number and why).
With `--expect-head <seq>:<hash>` (a head recorded elsewhere earlier, such as the last run's)
it also refuses a chain whose entry at that number no longer carries that hash: a chain
rewritten from that entry on, head included, is caught too.

Exit codes: 0 the chain holds, 1 a link is broken, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from midstage.adapters.audit_store import AuditStore
from midstage.clock import system_clock
from midstage.services.admin.audit import AuditAdmin


def add_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the audit log: verify its hash chain")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser("verify", help="walk the chain and report the first broken link")
    verify.add_argument("--table", required=True, help="the stack's AuditTableName output")
    verify.add_argument(
        "--expect-head", metavar="SEQ:HASH", help="a head recorded earlier that the chain must still contain"
    )


def run(args: argparse.Namespace) -> int:
    expected: tuple[int, str] | None = None
    if args.expect_head:
        seq, _, digest = str(args.expect_head).partition(":")
        if not (seq.isascii() and seq.isdigit()) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            print("--expect-head is <seq>:<64 hex digits>, as a verdict's head prints it", file=sys.stderr)
            return 2
        expected = (int(seq), digest)
    store = AuditStore(args.table)
    verdict = AuditAdmin(store, clock=system_clock).verify()
    if verdict["valid"] and expected is not None:
        verdict = _against(verdict, store, *expected)
    print(json.dumps(verdict, indent=2))
    return 0 if verdict["valid"] else 1


def _against(verdict: dict[str, Any], store: AuditStore, seq: int, digest: str) -> dict[str, Any]:
    found = store.entry(seq)
    if found is not None and found["hash"] == digest:
        return verdict
    why = "the entry is gone" if found is None else "its hash is not the one recorded earlier"
    return {**verdict, "valid": False, "firstBroken": {"seq": seq, "reason": f"the expected head: {why}"}}
