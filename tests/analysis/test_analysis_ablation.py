from __future__ import annotations

import pytest
from analysis_fixtures import exact_rows

from valley_assets.analysis import ablation_report


def _arms(rates: dict[str, float], *, student: str = "s", data_size: str = "1k", n_problems: int = 200) -> list[dict]:
    table = []
    for arm, rate in rates.items():
        table += exact_rows(student, {data_size: rate}, arm=arm, n_problems=n_problems, rows=None)
    return table


def test_identical_arms_give_a_zero_delta_with_a_zero_interval():
    table = _arms({"easy": 0.2, "hard": 0.2, "correct": 0.3, "incorrect": 0.3})
    report = ablation_report(table, n_boot=300)
    assert len(report.deltas) == 2 * 3  # two comparisons x three metrics
    for d in report.deltas:
        assert (d.delta, d.ci_low, d.ci_high) == (0.0, 0.0, 0.0)
        assert not d.excludes_zero
        assert d.n_problems == 200
    assert report.missing == ()


def test_easy_better_than_hard_is_detected_with_the_right_sign():
    report = ablation_report(_arms({"easy": 0.25, "hard": 0.10}), metrics=["pass@1"], n_boot=500, seed=1)
    (delta,) = report.deltas
    assert (delta.arm_a, delta.arm_b, delta.metric) == ("easy", "hard", "pass@1")
    assert delta.value_a == pytest.approx(0.25) and delta.value_b == pytest.approx(0.10)
    assert delta.delta == pytest.approx(0.15)
    assert delta.ci_low <= delta.delta <= delta.ci_high and delta.excludes_zero
    # Deterministic per seed.
    again = ablation_report(_arms({"easy": 0.25, "hard": 0.10}), metrics=["pass@1"], n_boot=500, seed=1)
    assert again.deltas == report.deltas


def test_groups_are_per_student_and_stage_and_missing_arms_are_listed():
    table = _arms({"easy": 0.2, "hard": 0.1}, data_size="0") + _arms({"easy": 0.3, "hard": 0.2}, data_size="1k")
    table += _arms({"correct": 0.2}, data_size="1k")
    report = ablation_report(table, metrics=["pass@1"], n_boot=100)
    assert [(d.data_size, d.arm_a) for d in report.deltas] == [("0", "easy"), ("1k", "easy")]
    assert [d.delta for d in report.deltas] == [pytest.approx(0.1), pytest.approx(0.1)]
    assert len(report.missing) == 1 and "arm 'incorrect' missing" in report.missing[0]
    rows = report.table_rows()
    assert rows[0]["comparison"] == "easy - hard" and rows[0]["differs"] == "yes"


def test_only_shared_problems_are_compared():
    easy = exact_rows("s", {"1k": 0.2}, arm="easy", n_problems=100, rows=None)
    hard = exact_rows("s", {"1k": 0.2}, arm="hard", n_problems=60, rows=None)
    (delta,) = ablation_report(easy + hard, comparisons=[("easy", "hard")], metrics=["pass@1"], n_boot=50).deltas
    assert delta.n_problems == 60


def test_disjoint_arms_and_unknown_metrics_are_refused():
    easy = exact_rows("s", {"1k": 0.2}, arm="easy", n_problems=5, rows=None)
    hard = [{**r, "arm": "hard", "question_id": r["question_id"] + "x"} for r in easy]
    with pytest.raises(ValueError, match="share no problem"):
        ablation_report(easy + hard, n_boot=10)
    with pytest.raises(ValueError, match="unknown ablation metric"):
        ablation_report(easy, metrics=["pass@10"])
