"""Distillation subsets and ablation arms, drawn from the pool.

Subsets are nested by construction: `select_subset(pool, n)` is the rows with `pool_rank < n`, so the 1K subset is
inside the 10K subset, which is inside the 30K subset, and adding a 100K subset later changes none of them. The
paper drew its 1K and 10K subsets from one 30K base sample; a prefix of one seeded order is the same design without
fixing the largest size in advance.

Ablation arms (same size, different composition), each a seeded sample of the pool rows that qualify:
- `easy`: TACO difficulty EASY or MEDIUM;
- `hard`: TACO difficulty HARD or VERY_HARD. MEDIUM_HARD is in neither arm: it sits between the two groups, and
  leaving it out keeps the contrast between the arms sharp (UNKNOWN_DIFFICULTY and non-TACO labels are also out);
- `correct`: judgement "right"; `incorrect`: judgement "wrong".
An arm orders its qualifying rows by blake2b(seed, arm, id), so arms with the same seed are independent draws and an
arm's rows for n are a prefix of its rows for a larger n.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from valley_assets.data.pool_rules import rank_key

PoolInput = pl.LazyFrame | pl.DataFrame | str | Path

ARM_FILTERS: dict[str, pl.Expr] = {
    "easy": pl.col("difficulty").is_in(["EASY", "MEDIUM"]),
    "hard": pl.col("difficulty").is_in(["HARD", "VERY_HARD"]),
    "correct": pl.col("judgement") == "right",
    "incorrect": pl.col("judgement") == "wrong",
}


class NotEnoughRowsError(ValueError):
    """The pool (or an arm of it) has fewer rows than a subset asks for."""


def _lazy(pool: PoolInput) -> pl.LazyFrame:
    if isinstance(pool, pl.LazyFrame):
        return pool
    if isinstance(pool, pl.DataFrame):
        return pool.lazy()
    if isinstance(pool, (str, Path)):
        return pl.scan_parquet(pool)
    raise TypeError(f"pool must be a polars frame or a parquet path, got {type(pool).__name__}")


def select_subset(pool: PoolInput, n_rows: int) -> pl.DataFrame:
    """The pool rows with `pool_rank < n_rows`, in rank order; raises NotEnoughRowsError naming the pool size."""
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    lf = _lazy(pool)
    n_pool = lf.select(pl.len()).collect().item()
    if n_pool < n_rows:
        raise NotEnoughRowsError(f"the pool has {n_pool} rows, fewer than the {n_rows} asked for")
    subset = lf.filter(pl.col("pool_rank") < n_rows).sort("pool_rank").collect()
    if subset.height != n_rows:  # ranks are 0..N-1 when the pool came from build_pool
        raise ValueError(f"pool_rank is not a dense 0-based rank: {subset.height} rows have rank < {n_rows}")
    return subset


def select_ablation_arm(pool: PoolInput, arm: str, n_rows: int, seed: int) -> pl.DataFrame:
    """`n_rows` rows of the arm (see the module docstring), in the arm's seeded order."""
    if arm not in ARM_FILTERS:
        raise ValueError(f"unknown ablation arm {arm!r}; expected one of {sorted(ARM_FILTERS)}")
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    qualifying = _lazy(pool).filter(ARM_FILTERS[arm]).collect()
    if qualifying.height < n_rows:
        raise NotEnoughRowsError(
            f"ablation arm {arm!r} has {qualifying.height} qualifying pool rows, fewer than the {n_rows} asked for")
    keys = pl.Series("_arm_key", [rank_key(seed, f"{arm}\x00{i}") for i in qualifying["id"]], dtype=pl.UInt64)
    return (qualifying.with_columns(keys).sort(["_arm_key", "pool_rank"]).head(n_rows).drop("_arm_key"))
