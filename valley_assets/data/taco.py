"""TACO (BAAI/TACO) problems with their difficulty labels.

TACO labels every problem EASY, MEDIUM, MEDIUM_HARD, HARD, VERY_HARD or UNKNOWN_DIFFICULTY; OCR2 copies the label
into its `difficulty` column for TACO rows, and the easy/hard ablation arms select on it (subsets.py).
"""

from __future__ import annotations

import polars as pl

from valley_assets.data.ocr2 import SOURCE_DATASETS, load_source
from valley_assets.data.schema import TACO_DIFFICULTIES, TACO_TO_LCB_DIFFICULTY

TACO_HUB_ID = SOURCE_DATASETS["taco"].hub_id
TACO_COLUMNS = ("question", "difficulty", "source", "starter_code")
TACO_TESTS_COLUMN = "input_output"  # JSON {"inputs": [...], "outputs": [...], "fn_name"?: ...}


def validate_difficulties(labels: pl.Series, *, where: str) -> None:
    """Raise naming the first row whose label is not one of TACO's six."""
    bad = labels.is_null() | ~labels.is_in(TACO_DIFFICULTIES)
    if bad.any():
        i = int(bad.arg_max())
        raise ValueError(f"{where}: row {i} has difficulty {labels[i]!r}; expected one of {TACO_DIFFICULTIES}")


def load_taco(source: str = TACO_HUB_ID, *, split: str = "train", revision: str = "main",
              with_tests: bool = False) -> pl.DataFrame:
    """TACO problems of one split: `index` (row number, the key OCR2 uses), question, difficulty, source,
    starter_code (and `input_output`, the tests, with `with_tests`). Difficulty labels are checked; an unknown label
    is an error naming the row. `source`: the hub id, a local copy of the repo (its `ALL/<split>-*.parquet`,
    ocr2.SOURCE_DATASETS) or one data file."""
    columns = (*TACO_COLUMNS, TACO_TESTS_COLUMN) if with_tests else TACO_COLUMNS
    ds = load_source(source, SOURCE_DATASETS["taco"], split=split, revision=revision, columns=columns)
    frame = pl.from_arrow(ds.data.table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.col(c).cast(pl.String) for c in columns)
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


def taco_stdin_tests(input_output: str | None, *, where: str) -> list[dict]:
    """TACO's tests as LiveCodeBench stdin test cases (`{input, output, testtype: "stdin"}`), for labelling new
    teacher traces with the grader.

    Call-based TACO problems (`fn_name`: Codewars-style free functions, not LeetCode's `class Solution`) have no
    LiveCodeBench equivalent, so they get no tests (the teacher stage then skips or leaves them unlabelled).
    Inputs/outputs given as lists of lines are joined with newlines, as TACO's own harness feeds them. A record that
    is not JSON of that shape is an error naming `where` (the problem)."""
    import json

    if input_output is None or not input_output.strip():
        return []
    try:
        spec = json.loads(input_output)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: input_output is not JSON ({exc.msg})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: input_output must be a JSON object, got {type(spec).__name__}")
    if spec.get("fn_name"):
        return []
    inputs, outputs = spec.get("inputs", []), spec.get("outputs", [])
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        raise ValueError(f"{where}: input_output needs lists 'inputs' and 'outputs' of one length, got "
                         f"{len(inputs) if isinstance(inputs, list) else type(inputs).__name__} inputs and "
                         f"{len(outputs) if isinstance(outputs, list) else type(outputs).__name__} outputs")

    def text(value, field: str, i: int) -> str:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return "\n".join(value)
        if isinstance(value, str):
            return value
        raise ValueError(f"{where}: input_output {field}[{i}] must be a string or a list of lines, "
                         f"got {type(value).__name__}")

    return [{"input": text(i_, "inputs", k), "output": text(o_, "outputs", k), "testtype": "stdin"}
            for k, (i_, o_) in enumerate(zip(inputs, outputs, strict=True))]


def taco_problem_records(source: str = TACO_HUB_ID) -> list[dict]:
    """TACO's train split as LiveCodeBench problem records (docs/architecture.md "Records"), its stdin tests as
    public tests (what teachers are graded on), the TACO label kept as `taco_difficulty`."""
    import json

    records = []
    for row in load_taco(source, with_tests=True).iter_rows(named=True):
        tests = taco_stdin_tests(row["input_output"], where=f"TACO train row {row['index']}")
        records.append({
            "question_id": f"taco-train-{row['index']}",
            "question_title": "",
            "question_content": row["question"] or "",
            "platform": row.get("source") or "taco",
            "contest_date": "",
            "starter_code": row.get("starter_code") or "",
            "difficulty": TACO_TO_LCB_DIFFICULTY.get(row["difficulty"], "unknown"),
            "taco_difficulty": row["difficulty"],
            "public_test_cases": json.dumps(tests),
            "private_test_cases": "[]",
            "metadata": "{}",
        })
    return records
