from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from analysis_fixtures import PAPER_QWEN, PAPER_ROWS, exact_rows

from valley_assets.analysis import TableError, fit_valley, log_linear_slope, valley_curves
from valley_assets.analysis.curve_tables import curve_table_rows, fit_table_rows
from valley_assets.analysis.curves import paper_key


def _paper_triples():
    return [(k, PAPER_ROWS[k], v) for k, v in PAPER_QWEN.items()]


def test_paper_numbers_put_the_valley_at_1k_with_the_papers_depth():
    fit = fit_valley(_paper_triples())
    assert fit.location == "1k" and fit.location_rows == 1000
    assert fit.has_valley
    assert fit.depth == pytest.approx((0.126 - 0.055) / 0.126)
    assert fit.absolute_drop == pytest.approx(0.071)
    # Least squares on log10 rows over 1k, 10k, 30k, worked out by hand.
    x = np.log10([1000, 10000, 30000])
    y = np.array([0.055, 0.188, 0.264])
    expected = ((x - x.mean()) @ (y - y.mean())) / ((x - x.mean()) @ (x - x.mean()))
    assert fit.slope_per_decade == pytest.approx(expected)
    assert fit.slope_points == ("1k", "10k", "30k")


def test_fit_does_not_depend_on_point_order():
    shuffled = list(reversed(_paper_triples()))
    assert fit_valley(shuffled) == fit_valley(_paper_triples())


def test_exactly_log_linear_values_give_the_exact_slope():
    rows = [1000, 10000, 100000]
    slope, intercept = log_linear_slope(rows, [0.1 * math.log10(r) - 0.2 for r in rows])
    assert slope == pytest.approx(0.1) and intercept == pytest.approx(-0.2)


def test_monotone_rise_has_no_valley_and_negative_depth():
    fit = fit_valley([("0", 0, 0.1), ("1k", 1000, 0.2), ("10k", 10000, 0.3)])
    assert fit.location == "1k"  # the lowest trained point, still above the base
    assert not fit.has_valley
    assert fit.depth == pytest.approx(-1.0)
    assert fit.slope_per_decade == pytest.approx(0.1)


def test_valley_at_the_largest_size_has_no_slope():
    fit = fit_valley([("0", 0, 0.3), ("1k", 1000, 0.2), ("10k", 10000, 0.1)])
    assert fit.location == "10k" and fit.has_valley
    assert fit.slope_per_decade is None and fit.slope_points == ()


def test_ties_go_to_the_smaller_data_size():
    fit = fit_valley([("0", 0, 0.3), ("10k", 10000, 0.1), ("1k", 1000, 0.1), ("30k", 30000, 0.2)])
    assert fit.location == "1k"


def test_base_of_zero_has_undefined_relative_depth():
    fit = fit_valley([("0", 0, 0.0), ("1k", 1000, 0.0), ("10k", 10000, 0.1)])
    assert fit.depth is None and not fit.has_valley


def test_fit_needs_a_base_and_a_trained_point():
    with pytest.raises(ValueError, match="base point"):
        fit_valley([("1k", 1000, 0.1), ("10k", 10000, 0.2)])
    with pytest.raises(ValueError, match="trained point"):
        fit_valley([("0", 0, 0.1)])
    with pytest.raises(ValueError, match="distinct"):
        log_linear_slope([1000, 1000], [0.1, 0.2])


def test_curves_from_table_reproduce_the_papers_curve_and_attach_paper_points():
    table = exact_rows("Qwen/Qwen2.5-7B-Instruct", PAPER_QWEN) + exact_rows("llama3.1-8b-instruct", PAPER_QWEN)
    curves = valley_curves(table, n_boot=200, seed=3)
    assert list(curves) == ["Qwen/Qwen2.5-7B-Instruct", "llama3.1-8b-instruct"]
    qwen = curves["Qwen/Qwen2.5-7B-Instruct"]
    assert [p.data_size for p in qwen.points] == ["0", "1k", "10k", "30k"]
    assert [p.rows for p in qwen.points] == [0, 1000, 10000, 30000]
    for p in qwen.points:
        assert p.pass_at_1.value == pytest.approx(PAPER_QWEN[p.data_size])
        assert p.pass_at_1.ci_low <= p.pass_at_1.value <= p.pass_at_1.ci_high
        assert p.pass_at_1.n_problems == 500 and p.n_samples == 500 * 1000
    # Same numbers as the paper, so our fit equals the paper's fit.
    assert qwen.fit.location == qwen.paper_fit.location == "1k"
    assert qwen.fit.depth == pytest.approx(qwen.paper_fit.depth)
    assert qwen.fit.slope_per_decade == pytest.approx(qwen.paper_fit.slope_per_decade)
    assert qwen.fit.depth_ci[0] <= qwen.fit.depth <= qwen.fit.depth_ci[1]
    assert qwen.fit.slope_ci[0] <= qwen.fit.slope_per_decade <= qwen.fit.slope_ci[1]
    assert qwen.fit.location_stability == 1.0 and qwen.fit.n_common_problems == 500
    assert [p.pass_at_1 for p in qwen.paper] == [0.126, 0.055, 0.188, 0.264]
    # No published Llama points are known to the project: none are invented.
    assert curves["llama3.1-8b-instruct"].paper == () and curves["llama3.1-8b-instruct"].paper_fit is None


def test_rates_and_per_difficulty_curves():
    curve = valley_curves(exact_rows("tiny", {"0": 0.2, "1k": 0.1}), n_boot=100)["tiny"]
    base, trained = curve.point("0"), curve.point("1k")
    assert base.completion_rate.value == pytest.approx(0.5) and trained.completion_rate.value == 1.0
    assert trained.think_rate.value == pytest.approx(0.5)
    assert set(trained.per_difficulty) == {"easy", "medium", "hard"}
    counts = sum(e.n_problems for e in trained.per_difficulty.values())
    assert counts == 500


def test_intervals_are_deterministic_per_seed():
    table = exact_rows("s", {"0": 0.2, "1k": 0.1, "10k": 0.3})
    a = valley_curves(table, n_boot=200, seed=11)["s"]
    b = valley_curves(table, n_boot=200, seed=11)["s"]
    c = valley_curves(table, n_boot=200, seed=12)["s"]
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()


def test_rows_can_come_from_a_mapping_or_a_polars_frame():
    table = exact_rows("s", {"0": 0.2, "1k": 0.1, "2k": 0.15}, rows=None, n_problems=50)
    curve = valley_curves(pl.DataFrame(table), rows_by_data_size={"0": 0, "1k": 10, "2k": 20}, n_boot=50)["s"]
    assert [p.rows for p in curve.points] == [0, 10, 20]
    with pytest.raises(TableError, match="no 'rows' column"):
        valley_curves(table)
    with pytest.raises(TableError, match="no entry for data_size key"):
        valley_curves(table, rows_by_data_size={"0": 0, "1k": 10})


def test_table_rows_hold_ours_and_the_papers_value_side_by_side():
    curves = valley_curves(exact_rows("Qwen2.5-7B-Instruct", PAPER_QWEN, n_problems=50), n_boot=50)
    rows = curve_table_rows(curves)
    assert [r["paper pass@1"] for r in rows] == [0.126, 0.055, 0.188, 0.264]
    fits = fit_table_rows(curves)
    assert [f["source"] for f in fits] == ["ours", "paper"]
    assert paper_key("Qwen/Qwen2.5-7B-Instruct") == "qwen2.5-7b-instruct"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"c": 1001}, r"row 3 \(question 'q0003'\): field 'c'=1001 is outside 0..n=1000"),
        ({"n": 0}, "row 3: field 'n' must be >= 1"),
        ({"difficulty": "EASY"}, "row 3: field 'difficulty' is 'EASY'"),
        ({"data_size": "1K"}, "row 3: field 'data_size'"),
        ({"rows": 5}, "row 3: data_size '0' has rows=5"),
        ({"question_id": None}, "row 3: field 'question_id' is missing"),
    ],
)
def test_bad_rows_are_named(change, message):
    table = exact_rows("s", {"0": 0.2, "1k": 0.1}, n_problems=10)
    table[3] = {**table[3], **change}
    with pytest.raises(TableError, match=message):
        valley_curves(table, n_boot=10)


def test_missing_column_duplicate_rows_and_ambiguous_release_are_refused():
    table = exact_rows("s", {"0": 0.2, "1k": 0.1}, n_problems=10)
    with pytest.raises(TableError, match=r"missing column\(s\) \['n_think'\]"):
        valley_curves([{k: v for k, v in r.items() if k != "n_think"} for r in table])
    with pytest.raises(TableError, match="duplicate row"):
        valley_curves(table + table[:1])
    two_releases = table + exact_rows("s", {"0": 0.2}, n_problems=10, release="release_v5")
    with pytest.raises(TableError, match="several release values"):
        valley_curves(two_releases, n_boot=10)
    assert valley_curves(two_releases, release="release_v5", n_boot=10)["s"].fit is None  # base only: no fit
    with pytest.raises(ValueError, match="no rows for arm 'main'"):
        valley_curves(exact_rows("s", {"0": 0.2}, n_problems=5, arm="easy"))


def test_parquet_round_trip_with_a_date_typed_contest_date(tmp_path):
    table = pl.DataFrame(exact_rows("s", {"0": 0.2, "1k": 0.1, "10k": 0.3}, n_problems=20))
    table = table.with_columns(pl.col("contest_date").str.to_date())
    table.write_parquet(tmp_path / "per_problem.parquet")
    curve = valley_curves(pl.read_parquet(tmp_path / "per_problem.parquet"), n_boot=20)["s"]
    assert curve.fit.location == "1k" and curve.fit.depth == pytest.approx(0.5)


def test_fit_intervals_use_only_problems_shared_by_every_point():
    table = exact_rows("s", {"0": 0.2, "1k": 0.1}, n_problems=50)
    table += exact_rows("s", {"10k": 0.3}, n_problems=20)  # the 10k checkpoint was scored on 20 problems only
    curve = valley_curves(table, n_boot=100)["s"]
    assert curve.point("10k").pass_at_1.n_problems == 20
    assert curve.fit.n_common_problems == 20
    assert curve.fit.location == "1k" and curve.fit.depth_ci is not None
