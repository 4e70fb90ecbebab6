"""Write sharding for hot partition keys: how many shards an expected write rate needs, and which
shard a record falls in. Pure: the rate and the record's key are arguments.

DynamoDB gives one partition key at most 1,000 write units per second, and splitting a partition
does not help writes that always land at the end of a key's range (an origin's references are
sorted by time). A key written faster than that is spread over `NN` shards, each its own
partition key; readers query every shard and merge.
"""

from __future__ import annotations

import hashlib
import math

PARTITION_WCU_PER_SECOND = 1_000
# Plan each shard for half a partition's limit: room for bursts above the expected peak and for
# the hash's uneven spread (tested: within a few per cent at 100,000 ids).
HEADROOM = 0.5
MAX_SHARDS = 100  # shard numbers are two digits


def shards_for(writes_per_second: float, *, write_units: int = 1, headroom: float = HEADROOM) -> int:
    """Shards for a key written `writes_per_second` times a second, each write `write_units` WCU
    (1 for an item up to 1 KB): ceil(rate x units / (1,000 x headroom)), between 1 and 100."""
    if writes_per_second < 0 or write_units < 1 or not 0 < headroom <= 1:
        raise ValueError("the rate must be non-negative, the units at least 1 and the headroom in (0, 1]")
    needed = math.ceil(writes_per_second * write_units / (PARTITION_WCU_PER_SECOND * headroom))
    if needed > MAX_SHARDS:
        raise ValueError(f"{writes_per_second:g} writes/s needs {needed} shards; at most {MAX_SHARDS} are supported")
    return max(1, needed)


def shard_of(key: str, shards: int) -> int:
    """The shard of `key` (a message id): stable across processes and releases (SHA-256, not
    Python's salted hash), uniform over `shards`."""
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be 1-{MAX_SHARDS}")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % shards


# Counter additions per message at a campaign's peak: `sent` (deliver) and `delivered` (feedback,
# seconds later); opens, clicks and bounces come later and spread out.
COUNTER_WRITES_PER_MESSAGE = 2


def counter_shards_for(sends_per_second: float) -> int:
    """Shards for a campaign's or journey's counters at `sends_per_second`."""
    return shards_for(sends_per_second * COUNTER_WRITES_PER_MESSAGE)
