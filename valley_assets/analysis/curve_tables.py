"""Flat table rows of the valley curves (points, fits, contest-date windows) for the report, asset metadata and
Markdown summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from valley_assets.analysis.curves import ValleyCurve, valley_curves
from valley_assets.analysis.tables import DIFFICULTIES, TableLike, read_per_problem
from valley_assets.science.metrics import in_window


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
