"""Offers: codes issued per second from one pool, and write units per issue
(`.venv/bin/python -m bench offers_issue`).

`OfferIssuer.issue` with the real `OfferStore` on moto in-process (`mock_aws`, made atomic per
item and transaction as the local cloud makes it; a DataTable declared as template.yaml declares
it). moto emulates DynamoDB in this process: these are NOT AWS figures; on AWS each call is a
round trip of a few milliseconds and a claim is a read of the cursor, a read of the slot and one
transaction, so one pool's rate is bounded by how fast one cursor value can be read and moved.

1. one caller, a pool of POOL codes, every person new: codes/s;
2. THREADS callers at once on one pool: codes/s, and transactions sent per code issued (a lost
   race costs a re-read and another transaction);
3. a generated offer (no pool), one caller: codes/s;
4. write units per issue, from the items each transaction writes, sized with `dynamo.item_size`
   (a transactional write bills 2 WCU per started KB): a pool claim, a generated claim, and a
   refusal (a plain put and an ADD).
"""

from __future__ import annotations

import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from bench.bench_profile_updater import data_table_definition, local_cloud
from infra.localcloud.fidelity import make_dynamodb_atomic
from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.adapters.offer_store import OfferStore
from midstage.models.offers import Offer
from midstage.services.offers import OfferIssuer

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
POOL = 200
THREADS = 8
REPEATS = 2


def _offer(offer_id: str, **changes: Any) -> Offer:
    return Offer.model_validate({"id": offer_id, "name": "Bench", "kind": "percentage", "value": 10, **changes})


def _store(dynamodb: Any) -> OfferStore:
    table = f"bench-offers-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(TableName=table, **data_table_definition())
    return OfferStore(table, client=dynamodb)


def _pool(store: OfferStore, offer_id: str, size: int) -> Offer:
    offer = _offer(offer_id)
    store.create(offer)
    store.upload(offer.id, [f"{offer_id.upper()}-{n:06d}" for n in range(size)], NOW)
    return offer


def _rate(issue: Any, people: range, threads: int) -> tuple[float, int]:
    """Codes issued per second of the process's CPU time (the machine is shared: wall time
    follows its load, CPU time follows the work), and how many were issued."""
    started = time.process_time()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        answers = list(pool.map(issue, people))
    elapsed = time.process_time() - started
    issued = sum(1 for a in answers if a.outcome == "issued")
    return issued / elapsed, issued


def _units(store: OfferStore, item_keys: list[dict[str, str]]) -> float:
    return sum(ddb.write_units(store._get(k) or {}, transactional=True) for k in item_keys)


def main() -> None:
    make_dynamodb_atomic()
    with local_cloud() as (dynamodb, _):
        rows: dict[str, list[float]] = {"one caller": [], f"{THREADS} callers": [], "generated": []}
        per_code: list[float] = []
        for repeat in range(REPEATS):
            store = _store(dynamodb)
            issuer = OfferIssuer(store)
            single = _pool(store, f"one-{repeat}", POOL)
            rate, _ = _rate(lambda i, o=single, s=issuer: s.issue(o, f"p{i}", "bench", [], NOW), range(POOL), 1)
            rows["one caller"].append(rate)

            many = _pool(store, f"many-{repeat}", POOL)
            before = store.transactions
            rate, issued = _rate(
                lambda i, o=many, s=issuer: s.issue(o, f"q{i}", "bench", [], NOW), range(POOL), THREADS
            )
            rows[f"{THREADS} callers"].append(rate)
            per_code.append((store.transactions - before) / issued)

            generated = _offer(f"gen-{repeat}", source="generated", generated={"pattern": "GEN-XXXXXXX"})
            store.create(generated)
            rate, _ = _rate(lambda i, o=generated, s=issuer: s.issue(o, f"r{i}", "bench", [], NOW), range(POOL), 1)
            rows["generated"].append(rate)

        print(f"moto in-process (NOT AWS); pool of {POOL} codes; per CPU second; median of {REPEATS} (min-max)")
        for name, rates in rows.items():
            print(f"  {name:>12}: {statistics.median(rates):8.0f} codes/s  ({min(rates):.0f}-{max(rates):.0f})")
        print(f"  {THREADS} callers: {statistics.median(per_code):.2f} transactions sent per code issued")

        last = REPEATS - 1
        pool_claim = _units(
            store,
            [
                keys.offer_pool_key(f"one-{last}"),
                keys.offer_slot_key(f"one-{last}", 0),
                keys.offer_holding_key("p0", f"one-{last}"),
                keys.offer_stats_key(f"one-{last}"),  # the per-cause count, ADDed in the claim
            ],
        )
        generated_claim = _units(
            store,
            [
                keys.offer_pool_key(f"gen-{last}"),
                keys.offer_slot_key(f"gen-{last}", 0),
                keys.offer_holding_key("r0", f"gen-{last}"),
                keys.coupon_key(str((store.slot(f"gen-{last}", 0) or {})["coupon"])),
                keys.offer_stats_key(f"gen-{last}"),
            ],
        )
        refused = issuer.issue(single, "late", "bench", [], NOW)
        assert refused.reason == "pool_exhausted"
        refusal = ddb.write_units(
            store._get(keys.offer_refusal_key("late", single.id, "bench")) or {}
        ) + ddb.write_units(store._get(keys.offer_stats_key(single.id)) or {})
        print(f"  write units per issue: pool {pool_claim:.0f}, generated {generated_claim:.0f}, refusal {refusal:.0f}")


if __name__ == "__main__":
    main()
