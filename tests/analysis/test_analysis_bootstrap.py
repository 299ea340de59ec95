from __future__ import annotations

import json

import numpy as np
import pytest

from valley_assets.analysis import bootstrap_mean, paired_bootstrap_difference
from valley_assets.analysis.bootstrap import resampled_means


def _pass_rates(m: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.binomial(10, rng.uniform(0, 0.6, size=m)) / 10


def test_interval_contains_the_estimate_and_is_deterministic_per_seed():
    values = _pass_rates(200)
    est = bootstrap_mean(values, n_boot=2000, seed=5)
    assert est.value == pytest.approx(values.mean())
    assert est.ci_low < est.value < est.ci_high
    assert est.n_problems == 200
    assert bootstrap_mean(values, n_boot=2000, seed=5) == est
    assert bootstrap_mean(values, n_boot=2000, seed=6) != est


def test_interval_narrows_with_more_problems():
    values = _pass_rates(100)
    small = bootstrap_mean(values, n_boot=2000, seed=1)
    # The same problem mix, four times as many problems: the standard error halves.
    large = bootstrap_mean(np.tile(values, 4), n_boot=2000, seed=1)
    width_small, width_large = small.ci_high - small.ci_low, large.ci_high - large.ci_low
    assert width_large < 0.65 * width_small
    assert width_large == pytest.approx(width_small / 2, rel=0.2)


def test_interval_tracks_the_normal_approximation():
    values = _pass_rates(400, seed=2)
    est = bootstrap_mean(values, n_boot=4000, seed=0)
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert (est.ci_high - est.ci_low) == pytest.approx(2 * 1.96 * se, rel=0.12)


def test_constant_values_have_a_zero_width_interval():
    est = bootstrap_mean([0.25] * 30, n_boot=100)
    assert (est.value, est.ci_low, est.ci_high) == (0.25, 0.25, 0.25)


def test_block_resampling_matches_shapes_and_shares_indices_across_rows():
    matrix = np.vstack([_pass_rates(50), _pass_rates(50, seed=9)])
    reps = resampled_means(matrix, n_boot=1300, seed=0)  # crosses the 512-row block boundary
    assert reps.shape == (1300, 2)
    # Resampling the difference directly gives the same replicates as the difference of jointly resampled rows.
    diff_reps = resampled_means(matrix[0] - matrix[1], n_boot=1300, seed=0)[:, 0]
    assert np.allclose(reps[:, 0] - reps[:, 1], diff_reps)


def test_paired_bootstrap_on_identical_arms_is_exactly_zero():
    values = _pass_rates(120)
    est = paired_bootstrap_difference(values, values.copy(), n_boot=500, seed=0)
    assert (est.value, est.ci_low, est.ci_high) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_centres_on_zero_for_exchangeable_arms_and_detects_a_shift():
    # Two arms drawn from the same per-problem success probabilities (10 samples each): no true difference.
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 0.6, size=300)
    arm_a, arm_b = rng.binomial(10, p) / 10, rng.binomial(10, p) / 10
    null = paired_bootstrap_difference(arm_a, arm_b, n_boot=2000, seed=0)
    assert null.ci_low < 0 < null.ci_high
    assert null.ci_high - null.ci_low < 0.05
    base = _pass_rates(300, seed=4)
    shifted = paired_bootstrap_difference(np.clip(base + 0.1, 0, 1), base, n_boot=2000, seed=0)
    assert shifted.ci_low > 0
    # Pairing matters: the unpaired interval of the same difference would be far wider than the paired one.
    unpaired_width = 2 * 1.96 * np.sqrt(base.var(ddof=1) * 2 / base.size)
    assert shifted.ci_high - shifted.ci_low < 0.5 * unpaired_width


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_mean([0.1], n_boot=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean([0.1], confidence=1.0)
    with pytest.raises(ValueError, match="at least one problem"):
        bootstrap_mean([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_mean([0.1, float("nan")])
    with pytest.raises(ValueError, match="same problems"):
        paired_bootstrap_difference([0.1, 0.2], [0.1])


def test_real_leaderboard_paired_difference_and_narrowing(shared_data):
    """Per-question pass@1 of two published models on release_v6 (10 samples per question)."""
    rows = json.loads((shared_data / "lcb_release_v6_leaderboard.json").read_text())["performances"]
    by_model: dict[str, dict[str, float]] = {}
    for r in rows:
        by_model.setdefault(r["model"], {})[r["question_id"]] = r["pass@1"] / 100
    strong, weak = by_model["O4-Mini (High)"], by_model["Claude-3-Haiku"]
    questions = sorted(set(strong) & set(weak))
    assert len(questions) == 1055
    a = np.array([strong[q] for q in questions])
    b = np.array([weak[q] for q in questions])
    diff = paired_bootstrap_difference(a, b, n_boot=1000, seed=0)
    assert diff.value == pytest.approx(a.mean() - b.mean())
    assert diff.ci_low > 0.3  # a reasoning model far ahead of a small chat model
    few = bootstrap_mean(a[:100], n_boot=1000, seed=0)
    many = bootstrap_mean(a, n_boot=1000, seed=0)
    assert many.ci_high - many.ci_low < few.ci_high - few.ci_low
