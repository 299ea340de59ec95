"""Data quality checks, pure: each returns (passed, details). The lead wraps them as Dagster asset checks."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from valley_assets.data.decontam import ContaminationIndex
from valley_assets.data.schema import POOL_SCHEMA

Frame = pl.LazyFrame | pl.DataFrame | str | Path
_EXAMPLES = 20  # how many offending ids a details dict lists


def _collect(frame: Frame, columns: list[str] | None = None) -> pl.DataFrame:
    if isinstance(frame, (str, Path)):
        frame = pl.scan_parquet(frame)
    lf = frame.lazy()
    return (lf.select(columns) if columns else lf).collect()


def check_schema(frame: Frame, schema: dict[str, pl.DataType] = POOL_SCHEMA) -> tuple[bool, dict]:
    """Columns, order and dtypes equal the declared schema (POOL_SCHEMA for pools and subsets)."""
    if isinstance(frame, (str, Path)):
        frame = pl.scan_parquet(frame)
    actual = dict(frame.lazy().collect_schema())
    missing = [c for c in schema if c not in actual]
    extra = [c for c in actual if c not in schema]
    mismatched = {c: {"expected": str(schema[c]), "actual": str(actual[c])}
                  for c in schema if c in actual and actual[c] != schema[c]}
    in_order = [c for c in actual if c in schema] == [c for c in schema if c in actual]
    passed = not missing and not extra and not mismatched and in_order
    return passed, {"missing": missing, "extra": extra, "mismatched": mismatched, "column_order_ok": in_order}


def check_non_empty(pool: Frame) -> tuple[bool, dict]:
    n = _collect(pool, ["pool_rank"]).height
    return n > 0, {"rows": n}


def check_nested(subsets: dict[str, Frame]) -> tuple[bool, dict]:
    """Every smaller subset's ids are inside every larger one (sizes by row count)."""
    ids = {name: set(_collect(frame, ["id"])["id"].to_list()) for name, frame in subsets.items()}
    ordered = sorted(ids, key=lambda name: len(ids[name]))
    violations = []
    for small, large in zip(ordered, ordered[1:], strict=False):
        outside = ids[small] - ids[large]
        if outside:
            violations.append({"subset": small, "not_in": large, "n_rows": len(outside),
                               "ids": sorted(outside)[:_EXAMPLES]})
    return not violations, {"sizes": {name: len(ids[name]) for name in ordered}, "violations": violations}


def check_no_contamination(pool: Frame, problems: list[dict], *, ngram: int = 13) -> tuple[bool, dict]:
    """No pool question matches a benchmark problem (exact normalised text or a shared word n-gram)."""
    index = ContaminationIndex(problems, ngram=ngram)
    questions = _collect(pool, ["id", "question"]).group_by("question", maintain_order=True).agg(pl.col("id"))
    hits = []
    n_rows = 0
    for question, row_ids in questions.iter_rows():
        hit = index.match(question)
        if hit is not None:
            n_rows += len(row_ids)
            if len(hits) < _EXAMPLES:
                hits.append({"ids": row_ids[:_EXAMPLES], "rule": hit.rule, "lcb_question_ids": list(hit.question_ids)})
    return n_rows == 0, {"n_problems": index.n_problems, "n_questions": questions.height,
                         "n_contaminated_rows": n_rows, "hits": hits}
