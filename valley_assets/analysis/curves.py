"""The valley curve: pass@1 (and completion / think-tag rates) against distillation data size, per student, built from
the per-problem eval table.

A *point* is one (student, data_size) checkpoint scored on the chosen release/prompt; its pass@1 is the mean over
problems of c/n (the unbiased pass@1 of one problem is c/n), the LiveCodeBench aggregate. The valley, depth, slope
and their intervals are defined in valley_fit.py; flat table rows of the curves are in curve_tables.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from valley_assets.analysis.bootstrap import Estimate, bootstrap_mean, derive_seed
from valley_assets.analysis.tables import DIFFICULTIES, TableLike, read_per_problem, single_value
from valley_assets.analysis.valley_fit import ValleyFit, fit_intervals, fit_valley
from valley_assets.partitions import data_size_thousands

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
                extra = fit_intervals(
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
