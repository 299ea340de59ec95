"""The valley fit on plain numbers: location, depth and post-valley slope of one curve, and their joint-resample
intervals.

Definitions used throughout (and in the report):
- the *valley* is the trained point (rows > 0) with the lowest pass@1 (ties: the smaller data size); the base model
  (`0`) is the reference, not a candidate;
- *depth* is the relative drop from the base model, (base - valley) / base; the absolute drop is kept too;
  `has_valley` is true only when the valley is strictly below the base;
- the *post-valley slope* is the ordinary least-squares slope of pass@1 on log10(rows) over the trained points at or
  after the valley, i.e. pass@1 gained per tenfold more data (per decade); it needs two such points;
- intervals are percentile bootstraps over problems (see bootstrap.py). For depth and slope the problems common to
  all points are resampled jointly (one index draw for every point), with the valley location held at the observed
  one; `location_stability` is the share of resamples whose own argmin is that same data size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from valley_assets.analysis.bootstrap import percentile_interval, resampled_means


@dataclass(frozen=True)
class ValleyFit:
    location: str
    location_rows: int
    base_value: float
    valley_value: float
    absolute_drop: float
    depth: float | None  # None when the base scores 0 (a relative drop from 0 is undefined)
    has_valley: bool
    slope_per_decade: float | None  # None with fewer than two points at/after the valley
    intercept: float | None
    slope_points: tuple[str, ...]
    depth_ci: tuple[float, float] | None = None
    slope_ci: tuple[float, float] | None = None
    location_stability: float | None = None
    n_common_problems: int | None = None

    def to_dict(self) -> dict:
        return {
            "location": self.location,
            "location_rows": self.location_rows,
            "base_value": self.base_value,
            "valley_value": self.valley_value,
            "absolute_drop": self.absolute_drop,
            "depth": self.depth,
            "has_valley": self.has_valley,
            "slope_per_decade": self.slope_per_decade,
            "intercept": self.intercept,
            "slope_points": list(self.slope_points),
            "depth_ci": list(self.depth_ci) if self.depth_ci else None,
            "slope_ci": list(self.slope_ci) if self.slope_ci else None,
            "location_stability": self.location_stability,
            "n_common_problems": self.n_common_problems,
        }


def log_linear_slope(rows: Sequence[int], values: Sequence[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of values on log10(rows): the change per tenfold more data."""
    if len(rows) != len(values) or len(rows) < 2:
        raise ValueError(
            f"a slope needs at least two (rows, value) pairs of equal length, got {len(rows)} and {len(values)}"
        )
    if any(r <= 0 for r in rows):
        raise ValueError(f"log-linear slope needs positive row counts, got {list(rows)}")
    x = np.log10(np.asarray(rows, dtype=float))
    if np.ptp(x) == 0:
        raise ValueError(f"log-linear slope needs at least two distinct row counts, got {list(rows)}")
    slope, intercept = np.polyfit(x, np.asarray(values, dtype=float), 1)
    return float(slope), float(intercept)


def _valley_index(trained_values: Sequence[float]) -> int:
    # np.argmin returns the first minimum: ties go to the smaller data size (points are sorted by rows).
    return int(np.argmin(np.asarray(trained_values, dtype=float)))


def fit_valley(points: Sequence[tuple[str, int, float]]) -> ValleyFit:
    """Valley location, depth and post-valley slope from (data_size, rows, pass@1) triples.

    Needs the base point (`rows == 0`) and at least one trained point; points may come in any order.
    """
    ordered = sorted(points, key=lambda p: p[1])
    base = [p for p in ordered if p[1] == 0]
    trained = [p for p in ordered if p[1] > 0]
    if len(base) != 1:
        raise ValueError(f"fit_valley needs exactly one base point (rows == 0), got {len(base)}")
    if not trained:
        raise ValueError("fit_valley needs at least one trained point (rows > 0)")
    base_value = float(base[0][2])
    i = _valley_index([p[2] for p in trained])
    key, rows, valley_value = trained[i][0], trained[i][1], float(trained[i][2])
    after = trained[i:]
    slope = intercept = None
    if len(after) >= 2:
        slope, intercept = log_linear_slope([p[1] for p in after], [p[2] for p in after])
    drop = base_value - valley_value
    return ValleyFit(
        location=key,
        location_rows=rows,
        base_value=base_value,
        valley_value=valley_value,
        absolute_drop=drop,
        depth=drop / base_value if base_value > 0 else None,
        has_valley=valley_value < base_value,
        slope_per_decade=slope,
        intercept=intercept,
        slope_points=tuple(p[0] for p in after) if slope is not None else (),
    )


def fit_intervals(
    fit: ValleyFit,
    keys: Sequence[str],
    rows: Sequence[int],
    matrix: np.ndarray,
    *,
    n_boot: int,
    confidence: float,
    seed: np.random.SeedSequence,
) -> dict:
    """Joint-resample intervals for depth and slope; `matrix` is (points sorted by rows, common problems)."""
    reps = resampled_means(matrix, n_boot=n_boot, seed=seed)  # (B, k)
    rows_arr = np.asarray(rows)
    trained = np.flatnonzero(rows_arr > 0)
    base_col = int(np.flatnonzero(rows_arr == 0)[0])
    # The observed valley (from each point's full problem set), even if the common subset alone would put it elsewhere.
    valley_col = list(keys).index(fit.location)
    out: dict = {"n_common_problems": matrix.shape[1]}
    base_reps, valley_reps = reps[:, base_col], reps[:, valley_col]
    usable = base_reps > 0  # a resample whose base scores 0 has no relative drop
    if usable.any():
        out["depth_ci"] = percentile_interval((base_reps[usable] - valley_reps[usable]) / base_reps[usable], confidence)
    argmins = trained[np.argmin(reps[:, trained], axis=1)]
    out["location_stability"] = float(np.mean(argmins == valley_col))
    if fit.slope_per_decade is not None:
        cols = trained[trained >= valley_col]
        x = np.log10(rows_arr[cols].astype(float))
        xc = x - x.mean()
        y = reps[:, cols]
        slopes = (y - y.mean(axis=1, keepdims=True)) @ xc / float(xc @ xc)
        out["slope_ci"] = percentile_interval(slopes, confidence)
    return out
