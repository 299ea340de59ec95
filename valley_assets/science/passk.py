"""pass@k with the unbiased estimator (Chen et al. 2021), as LiveCodeBench computes it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem: 1 - C(n-c, k) / C(n, k).

    n samples, c of them correct. Raises on impossible counts instead of returning a wrong number.
    """
    if n < 1 or k < 1:
        raise ValueError(f"pass_at_k needs n >= 1 and k >= 1, got n={n}, k={k}")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n, got c={c}, n={n}")
    if k > n:
        raise ValueError(f"pass_at_k needs k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    # Product form avoids huge binomials: prod_{i=n-c+1}^{n} (1 - k/i).
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Average pass@k over problems; counts are (n, c) per problem."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values:
        raise ValueError("mean_pass_at_k over zero problems is undefined")
    return sum(values) / len(values)


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean over problems (sample std / sqrt(m)); 0 for fewer than two problems."""
    m = len(values)
    if m < 2:
        return 0.0
    mean = sum(values) / m
    var = sum((v - mean) ** 2 for v in values) / (m - 1)
    return math.sqrt(var / m)
