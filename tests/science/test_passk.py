import math
from itertools import combinations

import pytest

from valley_assets.science.passk import mean_pass_at_k, pass_at_k, standard_error


def brute_force_pass_at_k(n, c, k):
    samples = [1] * c + [0] * (n - c)
    draws = list(combinations(range(n), k))
    return sum(any(samples[i] for i in d) for d in draws) / len(draws)


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (5, 2, 1), (5, 2, 3), (10, 3, 5), (8, 8, 2), (8, 0, 4)])
def test_matches_enumeration(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k))


def test_pass_at_1_is_fraction_correct():
    assert pass_at_k(16, 5, 1) == pytest.approx(5 / 16)


def test_mean_and_standard_error():
    assert mean_pass_at_k([(4, 4), (4, 0)], 1) == 0.5
    assert standard_error([1.0, 0.0]) == pytest.approx(math.sqrt(0.5 / 2))
    assert standard_error([0.3]) == 0.0


@pytest.mark.parametrize("n,c,k", [(0, 0, 1), (3, 4, 1), (3, -1, 1), (3, 1, 4), (3, 1, 0)])
def test_impossible_counts_raise(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_of_nothing_raises():
    with pytest.raises(ValueError):
        mean_pass_at_k([], 1)
