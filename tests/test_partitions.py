import dagster as dg
import pytest

from valley_assets import partitions as P


@pytest.mark.parametrize("key", ["0", "1k", "3k", "10k", "30k", "100k", "1000k"])
def test_good_data_size_keys(key):
    assert P.validate_data_size_key(key) == key


@pytest.mark.parametrize("key", ["bad|key", "abc", "-1k", "", "01k", "0k", "1K", "1.5k", "1k ", "10", "k"])
def test_bad_data_size_keys_are_refused(key):
    with pytest.raises(P.PartitionKeyError, match="data_size"):
        P.validate_data_size_key(key)


def test_rows_and_order():
    assert P.data_size_rows("30k", 1000) == 30000
    assert P.data_size_rows("0", 10) == 0
    assert P.data_size_rows("3k", 10) == 30
    assert P.sort_data_sizes(["30k", "0", "100k", "3k", "1k"]) == ["0", "1k", "3k", "30k", "100k"]


def test_add_data_sizes_validates_everything_before_adding_anything():
    instance = dg.DagsterInstance.ephemeral()
    assert P.add_data_sizes(instance, ["0", "1k"]) == ["0", "1k"]
    with pytest.raises(P.PartitionKeyError, match="bad\\|key"):
        P.add_data_sizes(instance, ["3k", "bad|key"])
    assert instance.get_dynamic_partitions(P.DATA_SIZE) == ["0", "1k"]  # 3k was not half-added
    assert P.add_data_sizes(instance, ["1k", "3k"]) == ["3k"]


@pytest.mark.parametrize("key", ["release_v6", "v4_v5", "release_latest", "demo-1.0"])
def test_release_keys(key):
    assert P.validate_release_key(key) == key


@pytest.mark.parametrize("key", ["bad|key", "", "a b", "../x"])
def test_bad_release_keys(key):
    with pytest.raises(P.PartitionKeyError):
        P.validate_release_key(key)


def test_checkpoint_partitions_have_two_dimensions():
    parts = P.checkpoint_partitions(["a", "b"])
    assert [d.name for d in parts.partitions_defs] == [P.DATA_SIZE, P.STUDENT]
