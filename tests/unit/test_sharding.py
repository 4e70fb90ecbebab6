"""Write sharding of hot keys: the shard count derived from the expected rate, and message ids
spread evenly over the shards of an origin's message index."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from scipy.stats import chi2

from midstage import keys
from midstage.config import ConfigurationError, StoreSettings
from midstage.logic import sharding
from midstage.logic.sharding import shard_of, shards_for

IDS = 100_000


@pytest.mark.parametrize(
    ("rate", "units", "shards"),
    [(0, 1, 1), (1, 1, 1), (500, 1, 1), (501, 1, 2), (1_000, 1, 2), (20_000, 1, 40), (20_000, 2, 80), (50_000, 1, 100)],
)
def test_given_an_expected_rate_when_sizing_then_each_shard_is_planned_at_half_a_partitions_limit(
    rate: int, units: int, shards: int
) -> None:
    assert shards_for(rate, write_units=units) == shards
    # and at that count no shard is expected above half of 1,000 WCU/s
    assert rate * units / shards <= sharding.PARTITION_WCU_PER_SECOND * sharding.HEADROOM


@pytest.mark.parametrize("bad", [{"writes_per_second": 50_001}, {"writes_per_second": -1}, {"headroom": 0}])
def test_given_a_rate_beyond_two_digit_shards_or_nonsense_when_sizing_then_it_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        shards_for(**{"writes_per_second": 1_000, **bad})


def test_given_the_default_settings_then_an_origins_index_has_40_shards_and_its_counters_80() -> None:
    settings = StoreSettings.from_env({"DATA_TABLE": "d", "CONFIG_TABLE": "c"})
    fastest = StoreSettings.from_env({"DATA_TABLE": "d", "CONFIG_TABLE": "c", "ORIGIN_PEAK_SENDS_PER_SECOND": "25000"})
    assert (settings.origin_peak_sends_per_second, settings.origin_shards, settings.stats_shards) == (20_000, 40, 80)
    assert (fastest.origin_shards, fastest.stats_shards) == (50, 100)
    with pytest.raises(ConfigurationError):
        StoreSettings.from_env({"DATA_TABLE": "d", "CONFIG_TABLE": "c", "ORIGIN_PEAK_SENDS_PER_SECOND": "25001"})


@pytest.mark.parametrize(
    "make_id",
    [
        # as the product makes them: a hash of the request's key
        lambda n: "msg_" + hashlib.sha256(f"campaign:c1:run1:p{n}".encode()).hexdigest()[:24],
        # and ids with nothing random in them at all: the spread must come from shard_of itself
        lambda n: f"msg_{n:024x}",
    ],
    ids=["product_ids", "sequential_ids"],
)
def test_given_100000_message_ids_when_sharded_40_ways_then_the_spread_is_uniform(make_id: object) -> None:
    shards = shards_for(20_000)
    counts = Counter(shard_of(make_id(n), shards) for n in range(IDS))  # type: ignore[operator]

    expected = IDS / shards
    statistic = sum((counts[s] - expected) ** 2 / expected for s in range(shards))
    # Chi-square goodness of fit against uniform: refused only if a uniform hash would give a
    # statistic this large less than once in 10,000 runs.
    assert sorted(counts) == list(range(shards))
    assert statistic < chi2.ppf(0.9999, shards - 1), (statistic, counts.most_common(3))
    # The busiest shard decides throttling: at 20,000 msg/s it takes well under 1,000 WCU/s.
    busiest = max(counts.values())
    assert busiest / expected < 1.05
    assert 20_000 * busiest / IDS < sharding.PARTITION_WCU_PER_SECOND * 0.55


def test_given_a_message_id_then_its_shard_is_stable_and_in_range() -> None:
    ids = [f"msg_{n:024x}" for n in range(1_000)]
    assert [shard_of(i, 40) for i in ids] == [shard_of(i, 40) for i in ids]
    assert {shard_of(i, 7) for i in ids} == set(range(7))
    with pytest.raises(ValueError):
        shard_of("msg_1", 101)


def test_origin_keys_name_each_two_digit_shard_and_the_unsharded_key_last() -> None:
    assert keys.origin_shard_pk("campaign", "spring", 7) == "ORIGIN#campaign#spring#07"
    assert keys.origin_pks("rule", "r1", 3) == [
        "ORIGIN#rule#r1#00",
        "ORIGIN#rule#r1#01",
        "ORIGIN#rule#r1#02",
        "ORIGIN#rule#r1",
    ]
