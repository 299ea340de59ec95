"""Declared schemas of the data part: teacher traces, the pool, problems (see docs/architecture.md "Records").

Every parquet file this package writes is cast to one of these schemas first, so a reader can rely on the column
names, their order and their types whatever shard or profile produced them.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from valley_assets.records import Problem, record_fields

# OpenCodeReasoning-2 columns. `index` is kept as a string, as OCR2 ships it; joins cast it to an integer.
TRACE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "question_id": pl.String(),
    "question": pl.String(),
    "r1_generation": pl.String(),
    "qwq_critique": pl.String(),
    "solution": pl.String(),
    "judgement": pl.String(),
    "pass_rate": pl.Float64(),
    "source": pl.String(),
    "license": pl.String(),
    "dataset": pl.String(),
    "split": pl.String(),
    "difficulty": pl.String(),
    "index": pl.String(),
}

# Columns a trace row cannot do without; the others (critique, provenance) may be null.
REQUIRED_TRACE_COLUMNS: tuple[str, ...] = (
    "id",
    "question_id",
    "question",
    "r1_generation",
    "solution",
    "judgement",
    "pass_rate",
    "dataset",
    "split",
    "index",
    "difficulty",
)
OPTIONAL_TRACE_COLUMNS: tuple[str, ...] = ("qwq_critique", "source", "license")

# Pool / subset rows: the trace columns, the token count and the seeded order.
# `n_tokens_exact` says whether `n_tokens` came from the tokenizer (True) or is the conservative upper bound
# estimated from the byte length (False); see valley_assets/data/pool.py.
POOL_SCHEMA: dict[str, pl.DataType] = {
    **TRACE_SCHEMA,
    "n_tokens": pl.Int64(),
    "n_tokens_exact": pl.Boolean(),
    "pool_rank": pl.Int64(),
}

# Rows that left the pool, each with the reason (see pool.py for the reasons).
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "row_id": pl.String(),
    "id": pl.String(),
    "kind": pl.String(),  # "malformed" (bad input) or "filtered" (a pool rule rejected a well-formed row)
    "reason": pl.String(),
    "detail": pl.String(),
}

PROBLEM_FIELDS: tuple[str, ...] = tuple(record_fields(Problem))  # the Problem record's fields, in its order

TACO_DIFFICULTIES: tuple[str, ...] = ("EASY", "MEDIUM", "MEDIUM_HARD", "HARD", "VERY_HARD", "UNKNOWN_DIFFICULTY")

# TACO's five labels folded onto LiveCodeBench's three (`easy|medium|hard`), so one difficulty column serves problem
# records of both kinds. The one copy (demo problems and TACO training problems both read it; it used to exist twice,
# with MEDIUM_HARD `hard` in one and `medium` in the other). MEDIUM_HARD is `medium`: LiveCodeBench's `hard` is the top
# band of each platform, and the paper's difficulty contrast (data/subsets.py: the `hard` arm is HARD and VERY_HARD,
# MEDIUM_HARD belongs to neither arm) puts MEDIUM_HARD below "hard"; mapping it to `hard` would make an LCB-`hard`
# training problem that the hard arm excludes. UNKNOWN_DIFFICULTY has no LCB level (records carry "unknown").
TACO_TO_LCB_DIFFICULTY: dict[str, str] = {
    "EASY": "easy", "MEDIUM": "medium", "MEDIUM_HARD": "medium", "HARD": "hard", "VERY_HARD": "hard"}


def arrow_schema(schema: dict[str, pl.DataType]) -> pa.Schema:
    """The pyarrow schema of a polars schema dict (for streaming writers)."""
    return pl.DataFrame(schema=schema).to_arrow().schema


def cast_to_schema(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Select the schema's columns in order, cast; absent optional columns become nulls.

    Raises KeyError naming the first absent column that the schema has and the frame lacks, unless that column is
    optional in the trace sense (critique, source, license), which are filled with nulls.
    """
    columns = []
    for name, dtype in schema.items():
        if name in frame.columns:
            columns.append(pl.col(name).cast(dtype))
        elif name in OPTIONAL_TRACE_COLUMNS:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
        else:
            raise KeyError(f"column {name!r} is missing (have: {sorted(frame.columns)})")
    return frame.select(columns)
