"""The valley curve: pass@1 (and completion / think-tag rates) against distillation data size, per student.

Definitions used throughout (and in the report):
- a *point* is one (student, data_size) checkpoint scored on the chosen release/prompt; its pass@1 is the mean over
  problems of c/n (the unbiased pass@1 of one problem is c/n), the LiveCodeBench aggregate;
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from valley_assets.analysis.bootstrap import (
    Estimate,
    bootstrap_mean,
    derive_seed,
    percentile_interval,
    resampled_means,
)
from valley_assets.analysis.tables import DIFFICULTIES, TableLike, read_per_problem, single_value
from valley_assets.partitions import data_size_thousands
from valley_assets.science.metrics import in_window

# The paper's Qwen2.5-7B-Instruct LiveCodeBench pass@1 (arXiv 2510.06101). The paper's Llama3.1-8B-Instruct numbers
# could not be located offline, so Llama is plotted without paper points rather than with guessed ones.
PAPER_PASS_AT_1: dict[str, dict[str, float]] = {
    "qwen2.5-7b-instruct": {"0": 0.126, "1k": 0.055, "10k": 0.188, "30k": 0.264},
}
PAPER_ROWS_PER_K = 1000


@dataclass(frozen=True)
class CurvePoint:
    data_size: str
    rows: int
    pass_at_1: Estimate
    completion_rate: Estimate
    think_rate: Estimate
    n_samples: int
    per_difficulty: dict[str, Estimate] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "data_size": self.data_size,
            "rows": self.rows,
            "pass@1": self.pass_at_1.to_dict(),
            "completion_rate": self.completion_rate.to_dict(),
            "think_rate": self.think_rate.to_dict(),
            "n_samples": self.n_samples,
            "per_difficulty": {d: e.to_dict() for d, e in self.per_difficulty.items()},
        }


@dataclass(frozen=True)
class PaperPoint:
    data_size: str
    rows: int
    pass_at_1: float


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


@dataclass(frozen=True)
class ValleyCurve:
    student: str
    arm: str
    release: str
    prompt_id: str
    points: tuple[CurvePoint, ...]
    fit: ValleyFit | None  # None without a base point or without any trained point
    paper: tuple[PaperPoint, ...] = ()
    paper_fit: ValleyFit | None = None
    confidence: float = 0.95
    n_boot: int = 1000
    seed: int = 0

    def point(self, data_size: str) -> CurvePoint:
        for p in self.points:
            if p.data_size == data_size:
                return p
        raise KeyError(f"student {self.student!r} has no point for data_size {data_size!r}")

    def to_dict(self) -> dict:
        return {
            "student": self.student,
            "arm": self.arm,
            "release": self.release,
            "prompt_id": self.prompt_id,
            "points": [p.to_dict() for p in self.points],
            "fit": self.fit.to_dict() if self.fit else None,
            "paper": [{"data_size": p.data_size, "rows": p.rows, "pass@1": p.pass_at_1} for p in self.paper],
            "paper_fit": self.paper_fit.to_dict() if self.paper_fit else None,
            "confidence": self.confidence,
            "n_boot": self.n_boot,
            "seed": self.seed,
        }


# --- pure fit on plain numbers -----------------------------------------------------------------------------------


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


def _fit_intervals(
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


# --- curves from the per-problem table ---------------------------------------------------------------------------


def paper_key(student: str) -> str:
    """`Qwen/Qwen2.5-7B-Instruct`, `qwen2.5-7b-instruct` -> `qwen2.5-7b-instruct` (the lookup key for paper points)."""
    return student.rsplit("/", 1)[-1].strip().lower()


def paper_points_for(
    student: str, paper: Mapping[str, Mapping[str, float]] = PAPER_PASS_AT_1
) -> tuple[PaperPoint, ...]:
    values = paper.get(paper_key(student), {})
    keys = sorted(values, key=data_size_thousands)
    return tuple(PaperPoint(k, data_size_thousands(k) * PAPER_ROWS_PER_K, float(values[k])) for k in keys)


def _rates(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    n = frame["n"].to_numpy().astype(float)
    return {
        "pass@1": frame["c"].to_numpy() / n,
        "completion_rate": frame["n_complete"].to_numpy() / n,
        "think_rate": frame["n_think"].to_numpy() / n,
    }


def _curve_point(
    frame: pl.DataFrame, student: str, data_size: str, *, n_boot: int, confidence: float, seed: int
) -> CurvePoint:
    rates = _rates(frame)

    def estimate(values: np.ndarray, *labels: str) -> Estimate:
        return bootstrap_mean(
            values, n_boot=n_boot, confidence=confidence, seed=derive_seed(seed, student, data_size, *labels)
        )

    difficulties = frame["difficulty"].to_numpy()
    per_difficulty = {
        d: estimate(rates["pass@1"][difficulties == d], "pass@1", d) for d in DIFFICULTIES if np.any(difficulties == d)
    }
    return CurvePoint(
        data_size=data_size,
        rows=int(frame["rows"][0]),
        pass_at_1=estimate(rates["pass@1"], "pass@1"),
        completion_rate=estimate(rates["completion_rate"], "completion_rate"),
        think_rate=estimate(rates["think_rate"], "think_rate"),
        n_samples=int(frame["n"].sum()),
        per_difficulty=per_difficulty,
    )


def _common_problem_matrix(frame: pl.DataFrame, keys: Sequence[str]) -> np.ndarray | None:
    """(points, common problems) matrix of per-problem pass@1, problems in a fixed order; None if none are shared."""
    by_size = {}
    for key in keys:
        rows = frame.filter(pl.col("data_size") == key)
        by_size[key] = dict(zip(rows["question_id"].to_list(), (rows["c"] / rows["n"]).to_list(), strict=True))
    common = sorted(set.intersection(*(set(v) for v in by_size.values())))
    if not common:
        return None
    return np.array([[by_size[k][q] for q in common] for k in keys], dtype=float)


def valley_curves(
    per_problem: TableLike,
    *,
    rows_by_data_size: Mapping[str, int] | None = None,
    arm: str = "main",
    release: str | None = None,
    prompt_id: str | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    paper: Mapping[str, Mapping[str, float]] = PAPER_PASS_AT_1,
) -> dict[str, ValleyCurve]:
    """One ValleyCurve per student from the per-problem eval table.

    Rows of `arm` only (`main` = the scaling curve). `release` / `prompt_id` may be left out when the table holds
    exactly one; otherwise name the one to analyse. `rows` per data_size comes from a `rows` column or from
    `rows_by_data_size`. Students are returned in name order, points in data-size order.
    """
    frame = read_per_problem(per_problem, rows_by_data_size=rows_by_data_size)
    frame = frame.filter(pl.col("arm") == arm)
    if frame.height == 0:
        raise ValueError(f"per-problem table has no rows for arm {arm!r}")
    release = single_value(frame, "release", release, f"valley curve (arm {arm!r})")
    frame = frame.filter(pl.col("release") == release)
    prompt_id = single_value(frame, "prompt_id", prompt_id, f"valley curve (arm {arm!r}, release {release!r})")
    frame = frame.filter(pl.col("prompt_id") == prompt_id)

    curves: dict[str, ValleyCurve] = {}
    for student in sorted(set(frame["student"].to_list())):
        rows_s = frame.filter(pl.col("student") == student)
        keys = sorted(set(rows_s["data_size"].to_list()), key=data_size_thousands)
        points = tuple(
            _curve_point(
                rows_s.filter(pl.col("data_size") == k), student, k, n_boot=n_boot, confidence=confidence, seed=seed
            )
            for k in keys
        )
        fit = None
        if any(p.rows == 0 for p in points) and any(p.rows > 0 for p in points):
            fit = fit_valley([(p.data_size, p.rows, p.pass_at_1.value) for p in points])
            matrix = _common_problem_matrix(rows_s, keys)
            if matrix is not None:
                extra = _fit_intervals(
                    fit,
                    keys,
                    [p.rows for p in points],
                    matrix,
                    n_boot=n_boot,
                    confidence=confidence,
                    seed=derive_seed(seed, student, "fit"),
                )
                fit = ValleyFit(**{**fit.__dict__, **extra})
        paper_pts = paper_points_for(student, paper)
        paper_fit = None
        if any(p.rows == 0 for p in paper_pts) and any(p.rows > 0 for p in paper_pts):
            paper_fit = fit_valley([(p.data_size, p.rows, p.pass_at_1) for p in paper_pts])
        curves[student] = ValleyCurve(
            student=student,
            arm=arm,
            release=release,
            prompt_id=prompt_id,
            points=points,
            fit=fit,
            paper=paper_pts,
            paper_fit=paper_fit,
            confidence=confidence,
            n_boot=n_boot,
            seed=seed,
        )
    return curves


def curve_table_rows(curves: Mapping[str, ValleyCurve]) -> list[dict]:
    """One flat row per (student, data_size) for tables: ours with intervals, the paper's beside it where known."""
    out = []
    for curve in curves.values():
        paper = {p.data_size: p.pass_at_1 for p in curve.paper}
        for p in curve.points:
            out.append(
                {
                    "student": curve.student,
                    "data_size": p.data_size,
                    "rows": p.rows,
                    "pass@1": p.pass_at_1.value,
                    "pass@1 CI": (p.pass_at_1.ci_low, p.pass_at_1.ci_high),
                    "paper pass@1": paper.get(p.data_size),
                    "completion": p.completion_rate.value,
                    "think": p.think_rate.value,
                    **{
                        f"{d} pass@1": (p.per_difficulty[d].value if d in p.per_difficulty else None)
                        for d in DIFFICULTIES
                    },
                    "problems": p.pass_at_1.n_problems,
                    "samples": p.n_samples,
                }
            )
    return out


def fit_table_rows(curves: Mapping[str, ValleyCurve]) -> list[dict]:
    """One row per student (and per student's paper curve) summarising the valley fit."""
    out = []
    for curve in curves.values():
        for source, fit in (("ours", curve.fit), ("paper", curve.paper_fit)):
            if fit is None:
                continue
            out.append(
                {
                    "student": curve.student,
                    "source": source,
                    "valley at": fit.location,
                    "base": fit.base_value,
                    "valley": fit.valley_value,
                    "depth": fit.depth,
                    "depth CI": fit.depth_ci,
                    "slope/decade": fit.slope_per_decade,
                    "slope CI": fit.slope_ci,
                    "argmin stability": fit.location_stability,
                }
            )
    return out


def window_table_rows(
    per_problem: TableLike,
    windows_by_student: Mapping[str, Sequence[tuple[str, str | None, str | None]]],
    *,
    rows_by_data_size: Mapping[str, int] | None = None,
    arm: str = "main",
    release: str | None = None,
    prompt_id: str | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[dict]:
    """pass@1 with bootstrap intervals per contest-date window × student × data size: the curve's points computed
    over the problems of each window only (`(label, start, end)`, both ends inclusive; a student's own windows, so
    an `after_cutoff` window starts at each student's cutoff). Windows without problems for a student are left out."""
    frame = read_per_problem(per_problem, rows_by_data_size=rows_by_data_size)
    if "contest_date" not in frame.columns:
        raise ValueError("per-problem table has no contest_date column: windows cannot be computed")
    out = []
    for student in sorted(set(frame["student"].to_list())):
        rows_s = frame.filter(pl.col("student") == student)
        for label, start, end in windows_by_student.get(student, ()):
            inside = pl.Series([in_window(d, (start, end), question_id=q) for d, q in
                                zip(rows_s["contest_date"].to_list(), rows_s["question_id"].to_list(), strict=True)],
                               dtype=pl.Boolean)
            windowed = rows_s.filter(inside)
            if windowed.filter(pl.col("arm") == arm).height == 0:
                continue
            curves = valley_curves(windowed, arm=arm, release=release, prompt_id=prompt_id, n_boot=n_boot,
                                   confidence=confidence, seed=seed, paper={})
            for p in curves[student].points:
                out.append({"window": label, "student": student, "data_size": p.data_size,
                            "from": start or "", "to": end or "", "pass@1": p.pass_at_1.value,
                            "pass@1 CI": (p.pass_at_1.ci_low, p.pass_at_1.ci_high),
                            "problems": p.pass_at_1.n_problems})
    return out
