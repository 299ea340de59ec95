"""Bootstrap confidence intervals over problems.

LiveCodeBench pass@1 is a mean over problems of per-problem pass rates, and the problems are the main source of
sampling noise (a few hundred, very unequal in difficulty). The intervals here resample problems with replacement and
take percentiles of the resampled means (the percentile bootstrap). Each call owns a numpy Generator built from an
explicit seed, so the same inputs and seed give the same interval on every machine.

Paired intervals (two arms, or two data sizes, scored on the same problems) resample the *same* problem indices for
both sides, so the problem-difficulty variance cancels out of the difference.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

# Resampled indices are drawn in blocks so that B x m never has to sit in memory at once (B=10k, m=1k is 80 MB).
_BLOCK = 512


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile-bootstrap interval over problems."""

    value: float
    ci_low: float
    ci_high: float
    n_problems: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def derive_seed(seed: int, *labels: str) -> np.random.SeedSequence:
    """A seed for one interval: the user's seed mixed with stable labels (student, data_size, metric, …).

    Different points get independent streams, and adding a point to a curve does not move the others' intervals.
    crc32 rather than hash(): Python's str hash is salted per process.
    """
    return np.random.SeedSequence([int(seed), *(zlib.crc32(label.encode()) for label in labels)])


def _check_args(n_boot: int, confidence: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")


def _as_matrix(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    """Per-problem values as a (k, m) float matrix: k statistics that share the problem axis."""
    matrix = np.asarray(values, dtype=float)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"{what}: need at least one problem, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{what}: per-problem values must be finite numbers")
    return matrix


def resampled_means(
    values: Sequence[float] | np.ndarray, *, n_boot: int, seed: int | np.random.SeedSequence
) -> np.ndarray:
    """Means of `n_boot` resamples of the problems, shape (n_boot, k) for k rows of per-problem values.

    Rows are resampled with the same indices, which is what makes paired statistics (differences, slopes across
    data sizes) come out right.
    """
    matrix = _as_matrix(values, "bootstrap")
    k, m = matrix.shape
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, k))
    for start in range(0, n_boot, _BLOCK):
        stop = min(start + _BLOCK, n_boot)
        idx = rng.integers(0, m, size=(stop - start, m))
        # (k, b, m) gather then mean over problems -> (b, k)
        out[start:stop] = matrix[:, idx].mean(axis=2).T
    return out


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_mean(
    values: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.SeedSequence = 0,
) -> Estimate:
    """Mean over problems with a percentile-bootstrap interval (problems resampled with replacement)."""
    _check_args(n_boot, confidence)
    matrix = _as_matrix(values, "bootstrap_mean")
    if matrix.shape[0] != 1:
        raise ValueError("bootstrap_mean takes one value per problem (a 1-D sequence)")
    reps = resampled_means(matrix, n_boot=n_boot, seed=seed)[:, 0]
    low, high = percentile_interval(reps, confidence)
    return Estimate(float(matrix.mean()), low, high, matrix.shape[1])


def paired_bootstrap_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.SeedSequence = 0,
) -> Estimate:
    """mean(a) - mean(b) over the same problems, with a paired percentile-bootstrap interval.

    a[i] and b[i] must be the same problem in both arms; each resample draws problem indices once and uses them on
    both sides.
    """
    _check_args(n_boot, confidence)
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.ndim != 1 or a_arr.shape != b_arr.shape:
        raise ValueError(
            f"paired bootstrap needs two 1-D arrays over the same problems, got {a_arr.shape} and {b_arr.shape}"
        )
    diff = a_arr - b_arr
    reps = resampled_means(diff, n_boot=n_boot, seed=seed)[:, 0]
    low, high = percentile_interval(reps, confidence)
    return Estimate(float(diff.mean()), low, high, diff.shape[0])
