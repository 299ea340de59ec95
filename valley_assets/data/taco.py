"""TACO (BAAI/TACO) problems with their difficulty labels.

TACO labels every problem EASY, MEDIUM, MEDIUM_HARD, HARD, VERY_HARD or UNKNOWN_DIFFICULTY; OCR2 copies the label
into its `difficulty` column for TACO rows, and the easy/hard ablation arms select on it (subsets.py).
"""

from __future__ import annotations

import polars as pl

from valley_assets.data.ocr2 import SOURCE_DATASETS, load_source
from valley_assets.data.schema import TACO_DIFFICULTIES

TACO_HUB_ID = SOURCE_DATASETS["taco"].hub_id
TACO_COLUMNS = ("question", "difficulty", "source", "starter_code")


def validate_difficulties(labels: pl.Series, *, where: str) -> None:
    """Raise naming the first row whose label is not one of TACO's six."""
    bad = labels.is_null() | ~labels.is_in(TACO_DIFFICULTIES)
    if bad.any():
        i = int(bad.arg_max())
        raise ValueError(f"{where}: row {i} has difficulty {labels[i]!r}; expected one of {TACO_DIFFICULTIES}")


def load_taco(source: str = TACO_HUB_ID, *, split: str = "train", revision: str = "main") -> pl.DataFrame:
    """TACO problems of one split: `index` (row number, the key OCR2 uses), question, difficulty, source,
    starter_code. Difficulty labels are checked; an unknown label is an error naming the row. `source`: the hub
    id, a local copy of the repo (its `ALL/<split>-*.parquet`, ocr2.SOURCE_DATASETS) or one data file."""
    ds = load_source(source, SOURCE_DATASETS["taco"], split=split, revision=revision, columns=TACO_COLUMNS)
    frame = pl.from_arrow(ds.data.table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.col(c).cast(pl.String) for c in TACO_COLUMNS)
    validate_difficulties(frame["difficulty"], where=f"{source} split {split!r}")
    return frame.with_row_index("index").with_columns(pl.col("index").cast(pl.Int64))


def attach_taco_difficulty(traces: pl.LazyFrame, taco: pl.DataFrame, *, split: str = "train") -> pl.LazyFrame:
    """Fill `difficulty` of TACO trace rows (dataset "taco", this split) from TACO where the trace lacks one."""
    labels = taco.select(pl.col("index").alias("_index"), pl.col("difficulty").alias("_taco_difficulty"),
                         pl.lit("taco").alias("dataset"), pl.lit(split).alias("split"))
    joined = traces.with_columns(pl.col("index").cast(pl.Int64, strict=False).alias("_index")).join(
        labels.lazy(), on=["dataset", "split", "_index"], how="left", maintain_order="left")
    lacking = pl.col("difficulty").is_null() | (pl.col("difficulty").str.strip_chars() == "")
    return joined.with_columns(
        pl.when(lacking).then(pl.col("_taco_difficulty")).otherwise(pl.col("difficulty")).alias("difficulty")
    ).drop("_index", "_taco_difficulty")
