"""spill.py: disk-backed per-row columns, and the two whole-input operations over hash buckets."""

from __future__ import annotations

import numpy as np
import pytest

from valley_assets.data.spill import ColumnStore, _n_buckets, add_rank_column, repeated_values


def store_with(tmp_path, keys: np.ndarray, part_sizes: list[int]) -> ColumnStore:
    store = ColumnStore(tmp_path / "store", {"key": np.uint64, "row": np.int64})
    start = 0
    for size in part_sizes:
        store.append({"key": keys[start:start + size], "row": np.arange(start, start + size)})
        start += size
    return store


@pytest.mark.parametrize("bucket_rows", [1, 3, 64, 1 << 16])
def test_repeated_values_and_ranks_match_the_in_memory_answer(tmp_path, bucket_rows):
    rng = np.random.default_rng(0)
    keys = rng.integers(0, np.iinfo(np.uint64).max, 500, dtype=np.uint64, endpoint=True)
    keys[[10, 20, 30]] = keys[5]       # a value four times
    keys[499] = keys[0]                 # first and last
    keys[[100, 101]] = np.uint64(0)     # extremes land in the first and last bucket
    keys[[200, 201]] = np.iinfo(np.uint64).max
    store = store_with(tmp_path, keys, [0, 120, 1, 300, 79])

    values, counts = np.unique(keys, return_counts=True)
    assert repeated_values(store, "key", bucket_rows=bucket_rows).tolist() == values[counts > 1].tolist()

    add_rank_column(store, "key", "rank", bucket_rows=bucket_rows)
    ranks = np.concatenate([store.part(k)["rank"] for k in range(store.n_parts)])
    expected = np.empty(len(keys), np.int64)
    expected[np.argsort(keys, kind="stable")] = np.arange(len(keys))  # ties: earlier position first
    assert ranks.tolist() == expected.tolist()
    assert ranks[10] > ranks[5] and ranks[20] > ranks[10]  # equal keys keep stream order
    assert not list((tmp_path / "store" / "key.buckets").iterdir())  # bucket files are removed once read


def test_parts_read_back_what_was_appended(tmp_path):
    store = store_with(tmp_path, np.arange(10, dtype=np.uint64), [4, 0, 6])
    assert store.n_rows == 10 and store.n_parts == 3
    assert store.part(1)["row"].tolist() == []
    assert store.part(2)["key"].tolist() == [4, 5, 6, 7, 8, 9]
    assert [len(c) for c in store.chunks("key", 3)] == [3, 3, 3, 1]
    with pytest.raises(ValueError, match="do not match"):
        store.append({"key": np.zeros(2, np.uint64)})
    with pytest.raises(ValueError, match="differ in length"):
        store.append({"key": np.zeros(2, np.uint64), "row": np.zeros(3, np.int64)})


def test_empty_store(tmp_path):
    store = store_with(tmp_path, np.empty(0, np.uint64), [0, 0])
    assert repeated_values(store, "key").tolist() == []
    add_rank_column(store, "key", "rank")
    assert store.part(0)["rank"].tolist() == []


def test_bucket_count_is_a_power_of_two_covering_the_rows():
    assert _n_buckets(0, 4) == 1 and _n_buckets(4, 4) == 1 and _n_buckets(5, 4) == 2
    assert _n_buckets(1_400_000, 1 << 16) == 32
