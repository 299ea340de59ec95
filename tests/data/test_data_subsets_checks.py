"""Subsets, ablation arms and the data checks."""

from __future__ import annotations

import polars as pl
import pytest
from ocr2_fixtures import question_text, row

from valley_assets.data.checks import check_nested, check_no_contamination, check_non_empty, check_schema
from valley_assets.data.pool import build_pool
from valley_assets.data.subsets import NotEnoughRowsError, select_ablation_arm, select_subset


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> pl.DataFrame:
    rows = [row(k, v, question=question_text(k)) for k in range(40) for v in range(3)]
    out = tmp_path_factory.mktemp("pool") / "pool.parquet"
    build_pool(pl.DataFrame(rows), contamination_problems=[], count_tokens=lambda ts: [len(t) for t in ts],
               max_tokens=100_000, seed=3, chars_per_token_low=2.0, out_path=out)
    return pl.read_parquet(out)


def test_subsets_are_nested_prefixes_of_the_seeded_order(pool):
    subsets = {n: select_subset(pool, n) for n in (10, 50, 120)}
    assert [s.height for s in subsets.values()] == [10, 50, 120]
    assert subsets[10]["pool_rank"].to_list() == list(range(10))
    assert set(subsets[10]["id"]) <= set(subsets[50]["id"]) <= set(subsets[120]["id"])
    passed, details = check_nested({f"{n}": s for n, s in subsets.items()})
    assert passed and details["sizes"] == {"10": 10, "50": 50, "120": 120}


def test_subset_larger_than_pool_says_how_many_rows_there_are(pool):
    with pytest.raises(NotEnoughRowsError, match="the pool has 120 rows, fewer than the 121 asked for"):
        select_subset(pool, 121)


def test_check_nested_reports_violations(pool):
    small = pool.filter(pl.col("pool_rank") >= 110)
    passed, details = check_nested({"a": small, "b": select_subset(pool, 50)})
    assert not passed
    assert details["violations"][0]["subset"] == "a" and details["violations"][0]["n_rows"] == 10


@pytest.mark.parametrize("arm, expected", [
    ("easy", {"EASY", "MEDIUM"}), ("hard", {"HARD", "VERY_HARD"}),
])
def test_difficulty_arms(pool, arm, expected):
    rows = select_ablation_arm(pool, arm, 20, seed=1)
    assert rows.height == 20 and set(rows["difficulty"]) == expected
    assert "MEDIUM_HARD" not in set(rows["difficulty"])
    longer = select_ablation_arm(pool, arm, 30, seed=1)
    assert longer["id"].to_list()[:20] == rows["id"].to_list()
    assert select_ablation_arm(pool, arm, 20, seed=2)["id"].to_list() != rows["id"].to_list()


def test_judgement_arms(pool):
    correct = select_ablation_arm(pool, "correct", 30, seed=0)
    incorrect = select_ablation_arm(pool, "incorrect", 30, seed=0)
    assert set(correct["judgement"]) == {"right"} and set(incorrect["judgement"]) == {"wrong"}
    n_wrong = pool.filter(pl.col("judgement") == "wrong").height
    with pytest.raises(NotEnoughRowsError, match=f"'incorrect' has {n_wrong} qualifying pool rows"):
        select_ablation_arm(pool, "incorrect", n_wrong + 1, seed=0)
    with pytest.raises(ValueError, match="unknown ablation arm"):
        select_ablation_arm(pool, "medium", 1, seed=0)


def test_check_schema_and_non_empty(pool):
    assert check_schema(pool) == (True, {"missing": [], "extra": [], "mismatched": {}, "column_order_ok": True})
    passed, details = check_schema(pool.drop("n_tokens").with_columns(pl.col("pool_rank").cast(pl.Int32)))
    assert not passed and details["missing"] == ["n_tokens"]
    assert details["mismatched"] == {"pool_rank": {"expected": "Int64", "actual": "Int32"}}
    assert check_non_empty(pool) == (True, {"rows": 120})
    assert check_non_empty(pool.head(0)) == (False, {"rows": 0})


def test_check_no_contamination(pool):
    clean = [{"question_id": "x", "question_content": "Completely unrelated text about cats and dogs."}]
    assert check_no_contamination(pool, clean)[0]
    leaked = [{"question_id": "lcb9", "question_content": question_text(5)}]
    passed, details = check_no_contamination(pool, leaked)
    assert not passed and details["n_contaminated_rows"] == 3
    assert details["hits"][0]["lcb_question_ids"] == ["lcb9"] and details["hits"][0]["rule"] == "exact"
