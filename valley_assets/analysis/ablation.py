"""Ablation deltas: easy vs hard and correct vs incorrect teacher data, trained from the same starting stage.

Arms are compared within one (student, data_size, release, prompt_id) group on the problems both arms were scored on
(normally all of them), so every delta is paired: the interval resamples problems once for both arms, and problem
difficulty cancels out of the difference. Positive delta = the first arm of the comparison scores higher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from valley_assets.analysis.bootstrap import derive_seed, paired_bootstrap_difference
from valley_assets.analysis.tables import TableLike, read_per_problem
from valley_assets.partitions import data_size_thousands

DEFAULT_COMPARISONS: tuple[tuple[str, str], ...] = (("easy", "hard"), ("correct", "incorrect"))
METRICS = ("pass@1", "completion_rate", "think_rate")
_NUMERATOR = {"pass@1": "c", "completion_rate": "n_complete", "think_rate": "n_think"}


@dataclass(frozen=True)
class AblationDelta:
    student: str
    data_size: str
    release: str
    prompt_id: str
    arm_a: str
    arm_b: str
    metric: str
    value_a: float
    value_b: float
    delta: float  # value_a - value_b
    ci_low: float
    ci_high: float
    n_problems: int  # problems scored in both arms

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly on one side of 0 (the arms differ at this confidence)."""
        return self.ci_low > 0 or self.ci_high < 0

    def to_dict(self) -> dict:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


@dataclass(frozen=True)
class AblationReport:
    deltas: tuple[AblationDelta, ...]
    # "(student, data_size, release, prompt_id): arm X missing" for comparisons that could not be made
    missing: tuple[str, ...]
    confidence: float
    n_boot: int
    seed: int

    def to_dict(self) -> dict:
        return {
            "deltas": [d.to_dict() for d in self.deltas],
            "missing": list(self.missing),
            "confidence": self.confidence,
            "n_boot": self.n_boot,
            "seed": self.seed,
        }

    def table_rows(self) -> list[dict]:
        return [
            {
                "student": d.student,
                "stage": d.data_size,
                "comparison": f"{d.arm_a} - {d.arm_b}",
                "metric": d.metric,
                "first arm": d.value_a,
                "second arm": d.value_b,
                "delta": d.delta,
                "delta CI": (d.ci_low, d.ci_high),
                "problems": d.n_problems,
                "differs": "yes" if d.excludes_zero else "no",
            }
            for d in self.deltas
        ]


def _per_problem_rates(frame: pl.DataFrame, metric: str) -> dict[str, float]:
    values = frame[_NUMERATOR[metric]].to_numpy() / frame["n"].to_numpy()
    return dict(zip(frame["question_id"].to_list(), values.tolist(), strict=True))


def ablation_report(
    per_problem: TableLike,
    *,
    comparisons: Sequence[tuple[str, str]] = DEFAULT_COMPARISONS,
    metrics: Sequence[str] = METRICS,
    rows_by_data_size: dict[str, int] | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AblationReport:
    """Paired deltas (arm_a - arm_b) per comparison and metric, per (student, data_size, release, prompt_id) group.

    `rows` is not needed for deltas; a table without a `rows` column is accepted (the mapping, if given, is checked).
    A group lacking one arm of a comparison is listed in `missing`; two arms with no problem in common raise.
    """
    unknown = [m for m in metrics if m not in _NUMERATOR]
    if unknown:
        raise ValueError(f"unknown ablation metric(s) {unknown}; expected some of {METRICS}")
    frame = read_per_problem(per_problem, rows_by_data_size=rows_by_data_size, require_rows=False)

    deltas: list[AblationDelta] = []
    missing: list[str] = []
    groups = frame.select("student", "data_size", "release", "prompt_id").unique()
    groups = groups.with_columns(
        pl.col("data_size").map_elements(data_size_thousands, return_dtype=pl.Int64).alias("_k")
    ).sort(["student", "_k", "release", "prompt_id"])
    for student, data_size, release, prompt_id, _ in groups.iter_rows():
        group = frame.filter(
            (pl.col("student") == student)
            & (pl.col("data_size") == data_size)
            & (pl.col("release") == release)
            & (pl.col("prompt_id") == prompt_id)
        )
        arms = set(group["arm"].to_list())
        where = f"(student={student!r}, data_size={data_size!r}, release={release!r}, prompt_id={prompt_id!r})"
        for arm_a, arm_b in comparisons:
            absent = [a for a in (arm_a, arm_b) if a not in arms]
            if absent:
                # Only worth reporting when the group ran part of this comparison.
                if len(absent) == 1:
                    missing.append(f"{where}: arm {absent[0]!r} missing for {arm_a} vs {arm_b}")
                continue
            rows_a = group.filter(pl.col("arm") == arm_a)
            rows_b = group.filter(pl.col("arm") == arm_b)
            for metric in metrics:
                a, b = _per_problem_rates(rows_a, metric), _per_problem_rates(rows_b, metric)
                common = sorted(set(a) & set(b))
                if not common:
                    raise ValueError(
                        f"{where}: arms {arm_a!r} and {arm_b!r} share no problem; a paired delta needs some"
                    )
                a_vals = np.array([a[q] for q in common])
                b_vals = np.array([b[q] for q in common])
                est = paired_bootstrap_difference(
                    a_vals,
                    b_vals,
                    n_boot=n_boot,
                    confidence=confidence,
                    seed=derive_seed(seed, student, data_size, release, prompt_id, arm_a, arm_b, metric),
                )
                deltas.append(
                    AblationDelta(
                        student=student,
                        data_size=data_size,
                        release=release,
                        prompt_id=prompt_id,
                        arm_a=arm_a,
                        arm_b=arm_b,
                        metric=metric,
                        value_a=float(a_vals.mean()),
                        value_b=float(b_vals.mean()),
                        delta=est.value,
                        ci_low=est.ci_low,
                        ci_high=est.ci_high,
                        n_problems=est.n_problems,
                    )
                )
    return AblationReport(tuple(deltas), tuple(missing), confidence, n_boot, seed)
