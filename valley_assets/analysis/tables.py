"""Reading the evaluation tables of docs/architecture.md into checked polars frames.

Both the per-problem eval table and the scores table arrive either as polars frames (read from parquet) or as lists of
dicts (tests, Dagster metadata). Everything downstream works on one checked frame, so a missing column, a wrong type or
an impossible count fails here with the row and field named, never as a wrong number later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from valley_assets.partitions import PartitionKeyError, data_size_thousands, validate_data_size_key
from valley_assets.records import ScoreRow, record_fields

PER_PROBLEM_COLUMNS: dict[str, type] = {
    "student": str,
    "data_size": str,
    "arm": str,
    "release": str,
    "prompt_id": str,
    "question_id": str,
    "difficulty": str,
    "contest_date": str,
    "n": int,
    "c": int,
    "n_complete": int,
    "n_think": int,
}

SCORES_COLUMNS: dict[str, type] = record_fields(ScoreRow)  # the ScoreRow record (valley_assets.records)

DIFFICULTIES = ("easy", "medium", "hard")
SCORE_METRICS = ("pass@1", "completion_rate", "think_rate")

TableLike = pl.DataFrame | Iterable[Mapping[str, Any]]


class TableError(ValueError):
    """An evaluation table that breaks the record format of docs/architecture.md."""


def _as_frame(table: TableLike, name: str) -> pl.DataFrame:
    if isinstance(table, pl.DataFrame):
        return table
    rows = list(table)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TableError(f"{name} row {i}: expected a mapping of column -> value, got {type(row).__name__}")
    # infer_schema_length=None: a column that is null in the first rows must not be typed from them alone.
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def _check_columns(frame: pl.DataFrame, columns: Mapping[str, type], name: str, optional: Iterable[str] = ()) -> None:
    missing = [c for c in columns if c not in frame.columns and c not in set(optional)]
    if missing:
        raise TableError(f"{name} is missing column(s) {missing}; it has {frame.columns}")


def _first_bad_row(frame: pl.DataFrame, mask: pl.Expr) -> dict[str, Any] | None:
    bad = frame.with_row_index("_row").filter(mask)
    return bad.row(0, named=True) if bad.height else None


def _cast_columns(frame: pl.DataFrame, columns: Mapping[str, type], name: str) -> pl.DataFrame:
    """Cast to the contract types, naming the first row whose value does not convert."""
    dtypes = {str: pl.String, int: pl.Int64, float: pl.Float64}
    for column, kind in columns.items():
        if column not in frame.columns:
            continue
        nulls = _first_bad_row(frame, pl.col(column).is_null())
        if nulls is not None:
            raise TableError(f"{name} row {nulls['_row']}: field {column!r} is missing (null)")
        source = frame.schema[column]
        if kind is str and source.is_temporal():
            # contest_date read back from parquet may be typed as a date; the contract's ISO string is its cast.
            frame = frame.with_columns(pl.col(column).cast(pl.String))
            continue
        if kind is str and source != pl.String:
            raise TableError(f"{name}: column {column!r} must hold strings, found {source}")
        if kind is int and not source.is_integer():
            if source.is_float():
                frac = _first_bad_row(frame, pl.col(column) != pl.col(column).round(0))
                if frac is not None:
                    raise TableError(
                        f"{name} row {frac['_row']}: field {column!r} must be a whole number, got {frac[column]!r}"
                    )
            else:
                raise TableError(f"{name}: column {column!r} must hold integers, found {source}")
        if kind is float and not (source.is_float() or source.is_integer()):
            raise TableError(f"{name}: column {column!r} must hold numbers, found {source}")
        frame = frame.with_columns(pl.col(column).cast(dtypes[kind]))
    return frame


def _check_data_sizes(frame: pl.DataFrame, name: str) -> None:
    for i, key in enumerate(frame["data_size"].to_list()):
        try:
            validate_data_size_key(key)
        except PartitionKeyError as err:
            raise TableError(f"{name} row {i}: field 'data_size': {err}") from None


def _attach_rows(frame: pl.DataFrame, rows_by_data_size: Mapping[str, int] | None, name: str) -> pl.DataFrame:
    """Give every row its `rows` (training examples behind its data_size), from the column or the mapping.

    The key alone does not say how many rows it stands for (the demo shrinks rows per `k`), so the count travels with
    the table or is passed in; `0` must always mean zero rows and every other key a positive count.
    """
    if rows_by_data_size is not None:
        unknown = sorted(set(frame["data_size"].to_list()) - set(rows_by_data_size), key=data_size_thousands)
        if unknown:
            raise TableError(f"{name}: rows_by_data_size has no entry for data_size key(s) {unknown}")
        frame = frame.with_columns(
            pl.col("data_size").replace_strict(dict(rows_by_data_size), return_dtype=pl.Int64).alias("rows")
        )
    elif "rows" not in frame.columns:
        raise TableError(
            f"{name} has no 'rows' column and no rows_by_data_size mapping was given: the number of training rows "
            "behind each data_size key is needed for the log-x axis and the slope"
        )
    frame = _cast_columns(frame, {"rows": int}, name)
    base_bad = _first_bad_row(frame, (pl.col("data_size") == "0") != (pl.col("rows") == 0))
    if base_bad is not None:
        raise TableError(
            f"{name} row {base_bad['_row']}: data_size {base_bad['data_size']!r} has rows={base_bad['rows']}; "
            "'0' (the base model) must have 0 rows and every other key a positive count"
        )
    negative = _first_bad_row(frame, pl.col("rows") < 0)
    if negative is not None:
        raise TableError(f"{name} row {negative['_row']}: field 'rows' is negative ({negative['rows']})")
    inconsistent = frame.group_by("data_size").agg(pl.col("rows").n_unique().alias("k")).filter(pl.col("k") > 1)
    if inconsistent.height:
        key = inconsistent["data_size"][0]
        raise TableError(f"{name}: data_size {key!r} carries more than one distinct 'rows' value")
    return frame


def read_per_problem(
    table: TableLike, *, rows_by_data_size: Mapping[str, int] | None = None, require_rows: bool = True
) -> pl.DataFrame:
    """The per-problem eval table, checked and typed, with an int `rows` column.

    `require_rows=False` (deltas between arms, which never look at data volume) lets a table with neither a `rows`
    column nor a mapping through without one; a `rows` column or mapping that is present is still checked.

    Checks: every contract column present and non-null; counts whole numbers with 0 <= c, n_complete, n_think <= n and
    n >= 1; difficulty in easy|medium|hard; data_size keys valid; one row per
    (student, data_size, arm, release, prompt_id, question_id).
    """
    name = "per-problem table"
    frame = _as_frame(table, name)
    if frame.height == 0:
        raise TableError(f"{name} is empty: there is nothing to analyse")
    _check_columns(frame, PER_PROBLEM_COLUMNS, name)
    frame = _cast_columns(frame, PER_PROBLEM_COLUMNS, name)
    _check_data_sizes(frame, name)
    bad = _first_bad_row(frame, pl.col("n") < 1)
    if bad is not None:
        raise TableError(f"{name} row {bad['_row']}: field 'n' must be >= 1, got {bad['n']}")
    for column in ("c", "n_complete", "n_think"):
        bad = _first_bad_row(frame, (pl.col(column) < 0) | (pl.col(column) > pl.col("n")))
        if bad is not None:
            raise TableError(
                f"{name} row {bad['_row']} (question {bad['question_id']!r}): field {column!r}={bad[column]} "
                f"is outside 0..n={bad['n']}"
            )
    bad = _first_bad_row(frame, ~pl.col("difficulty").is_in(list(DIFFICULTIES)))
    if bad is not None:
        raise TableError(
            f"{name} row {bad['_row']}: field 'difficulty' is {bad['difficulty']!r}, expected one of {DIFFICULTIES}"
        )
    if require_rows or rows_by_data_size is not None or "rows" in frame.columns:
        frame = _attach_rows(frame, rows_by_data_size, name)
    key = ["student", "data_size", "arm", "release", "prompt_id", "question_id"]
    dup = frame.filter(pl.struct(key).is_duplicated())
    if dup.height:
        first = dup.row(0, named=True)
        raise TableError(f"{name}: duplicate row for {{{', '.join(f'{k}={first[k]!r}' for k in key)}}}")
    return frame


def read_scores(table: TableLike) -> pl.DataFrame:
    """The scores table, checked and typed (all contract columns, known metrics and difficulty labels)."""
    name = "scores table"
    frame = _as_frame(table, name)
    if frame.height == 0:
        raise TableError(f"{name} is empty")
    _check_columns(frame, SCORES_COLUMNS, name)
    frame = _cast_columns(frame, SCORES_COLUMNS, name)
    _check_data_sizes(frame, name)
    bad = _first_bad_row(frame, ~pl.col("metric").is_in(list(SCORE_METRICS)))
    if bad is not None:
        raise TableError(
            f"{name} row {bad['_row']}: field 'metric' is {bad['metric']!r}, expected one of {SCORE_METRICS}"
        )
    bad = _first_bad_row(frame, ~pl.col("difficulty").is_in(["all", *DIFFICULTIES]))
    if bad is not None:
        raise TableError(f"{name} row {bad['_row']}: field 'difficulty' is {bad['difficulty']!r}")
    return frame


def latest_scores(table: TableLike) -> pl.DataFrame:
    """The newest score per (student, data_size, arm, release, date_window, prompt_id, difficulty, metric).

    The scores table is appended by every scoring run, so re-scoring a checkpoint leaves older rows behind; reports
    show the latest (`scored_at` is ISO 8601, so string order is time order).
    """
    frame = read_scores(table)
    key = ["student", "data_size", "arm", "release", "date_window", "prompt_id", "difficulty", "metric"]
    latest = frame.sort("scored_at").group_by(key, maintain_order=True).last()
    return (
        latest.with_columns(pl.col("data_size").map_elements(data_size_thousands, return_dtype=pl.Int64).alias("_k"))
        .sort(["student", "arm", "_k", "difficulty", "metric"])
        .drop("_k")
    )


def single_value(frame: pl.DataFrame, column: str, wanted: str | None, context: str) -> str:
    """The one value of `column` to analyse: `wanted` if given (and present), else the only value there is."""
    values = sorted(set(frame[column].to_list()))
    if wanted is not None:
        if wanted not in values:
            raise TableError(f"{context}: no rows with {column}={wanted!r}; present: {values}")
        return wanted
    if len(values) != 1:
        raise TableError(f"{context}: several {column} values {values}; pass {column}=... to choose one")
    return values[0]
