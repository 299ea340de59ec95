"""OpenCodeReasoning-2 traces and the recovery of their question text.

OCR2 ships `question` as the placeholder "-"; its dataset card recovers the text from the source dataset row
(`dataset`, `split`, `index` = row number in that split):
- `taco` (BAAI/TACO) and `apps` (codeparrot/apps): the `question` column;
- `code_contests` (deepmind/code_contests): `description`;
- `open-r1/codeforces`: `description`, then "Input" + `input_format`, "Output" + `output_format`, "Examples" with
  each example's input and output, and "Note" + `note` (`codeforces_question`, following the card's code).
Here the recovery is one polars join on (dataset, split, index) against a small table of source questions, streamed
over the traces batch by batch, never a lookup per row.

Every source is a hub id or a local / object-store path, read through the same `datasets.load_dataset` call
(`load_source`); tests use small local files with the real column names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import datasets
import polars as pl
import pyarrow.parquet as pq

from valley_assets.data.schema import TRACE_SCHEMA, arrow_schema

OCR2_HUB_ID = "nvidia/OpenCodeReasoning-2"
PLACEHOLDER = "-"

# OCR2 `dataset` value -> (default hub id, column holding the question; None = composed by codeforces_question).
SOURCE_DATASETS: dict[str, tuple[str, str | None]] = {
    "taco": ("BAAI/TACO", "question"),
    "apps": ("codeparrot/apps", "question"),
    "code_contests": ("deepmind/code_contests", "description"),
    "open-r1/codeforces": ("open-r1/codeforces", None),
}
CODEFORCES_COLUMNS = ("description", "input_format", "output_format", "examples", "note")
QUESTION_KEY = ("dataset", "split", "index")


def _is_path(source: str) -> bool:
    return "://" in source or Path(source).exists()


def load_source(source: str, *, split: str, name: str | None = None, revision: str | None = None,
                columns: Iterable[str] | None = None) -> datasets.Dataset:
    """One split of a dataset: a hub id, a local folder laid out like a hub repo, or a single data file.

    Folders and hub ids go through `load_dataset(source, split=...)`, which finds the split's files by name
    (`train-*.parquet`, `test.jsonl`, `data/valid-*`, ...); a single file is loaded as that split.
    """
    path = Path(source)
    if path.is_file():
        builder = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}.get(path.suffix)
        if builder is None:
            raise ValueError(f"cannot read {source}: unknown file type {path.suffix!r}")
        ds = datasets.load_dataset(builder, data_files={split: str(path)}, split=split)
    else:
        ds = datasets.load_dataset(source, name, split=split, revision=revision)
    if columns is not None:
        wanted = list(columns)
        absent = [c for c in wanted if c not in ds.column_names]
        if absent:
            raise KeyError(f"{source} split {split!r} has no column(s) {absent} (has: {ds.column_names})")
        ds = ds.select_columns(wanted)
    return ds


def load_ocr2(source: str = OCR2_HUB_ID, *, split: str = "python", name: str | None = None,
              max_rows: int | None = None, revision: str | None = None) -> datasets.Dataset:
    """OCR2 traces: a hub id (`split` = "python" or "cpp"), or a local / object-store folder, glob or file of
    parquet shards, read with `load_dataset("parquet", data_files=...)` (the shards' own split is "train")."""
    if _is_path(source):
        path = Path(source)
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*.parquet"))
            if not files:
                raise FileNotFoundError(f"no parquet shards under {source}")
        else:
            files = [source]
        ds = datasets.load_dataset("parquet", data_files={"train": files}, split="train")
    else:
        ds = datasets.load_dataset(source, name, split=split, revision=revision)
    missing = [c for c in ("question", "r1_generation", "dataset", "split", "index", "id") if c not in ds.column_names]
    if missing:
        raise KeyError(f"{source}: not OCR2-shaped, missing column(s) {missing} (has: {ds.column_names})")
    if max_rows is not None:
        # flatten: later reads go through the Arrow table, which an index mapping would not restrict
        ds = ds.select(range(min(max_rows, len(ds)))).flatten_indices()
    return ds


def codeforces_question(row: Mapping) -> str:
    """The question text of an open-r1/codeforces row, assembled as the OCR2 dataset card does."""
    question = row.get("description") or ""
    if row.get("input_format"):
        question += "\n\nInput\n\n" + row["input_format"]
    if row.get("output_format"):
        question += "\n\nOutput\n\n" + row["output_format"]
    if row.get("examples"):
        question += "\n\nExamples"
        for example in row["examples"]:
            if example.get("input") is not None:
                question += "\n\nInput\n\n" + example["input"]
            if example.get("output") is not None:
                question += "\n\nOutput\n\n" + example["output"]
    if row.get("note"):
        question += "\n\nNote\n\n" + row["note"]
    return question


def source_questions(dataset_name: str, source: str, splits: Iterable[str], *,
                     revision: str | None = None) -> pl.DataFrame:
    """(dataset, split, index, source_question) for every row of the given splits of one source dataset."""
    if dataset_name not in SOURCE_DATASETS:
        raise ValueError(f"unknown OCR2 source dataset {dataset_name!r}; known: {sorted(SOURCE_DATASETS)}")
    column = SOURCE_DATASETS[dataset_name][1]
    frames = []
    for split in sorted(set(splits)):
        if column is not None:
            ds = load_source(source, split=split, revision=revision, columns=[column])
            texts = pl.from_arrow(ds.data.table.column(column))
            questions = pl.DataFrame({"source_question": texts}).with_columns(pl.col("source_question").cast(pl.String))
        else:
            ds = load_source(source, split=split, revision=revision, columns=CODEFORCES_COLUMNS)
            questions = pl.DataFrame({"source_question": [codeforces_question(r) for r in ds]}, schema={
                "source_question": pl.String})
        frames.append(questions.with_row_index("index").select(
            pl.lit(dataset_name).alias("dataset"), pl.lit(split).alias("split"),
            pl.col("index").cast(pl.Int64), "source_question"))
    if not frames:
        return pl.DataFrame(schema={"dataset": pl.String, "split": pl.String, "index": pl.Int64,
                                    "source_question": pl.String})
    return pl.concat(frames)


def needed_splits(traces: pl.LazyFrame) -> dict[str, list[str]]:
    """Per source dataset, the splits that rows with a placeholder question point into."""
    pairs = (traces.filter(pl.col("question").str.strip_chars() == PLACEHOLDER)
             .select("dataset", "split").unique().collect())
    out: dict[str, list[str]] = {}
    for dataset, split in pairs.iter_rows():
        if dataset in SOURCE_DATASETS and split is not None:
            out.setdefault(dataset, []).append(split)
    return {k: sorted(v) for k, v in out.items()}


def recover_questions(traces: pl.LazyFrame | pl.DataFrame, questions: pl.DataFrame) -> pl.LazyFrame:
    """Replace placeholder questions by the source text, joined on (dataset, split, index).

    Rows whose source row is unknown keep "-" (the pool quarantines them as `unrecovered_question`); rows that
    already carry a question keep it. Row order is preserved.
    """
    duplicated = questions.group_by(list(QUESTION_KEY)).len().filter(pl.col("len") > 1)
    if duplicated.height:
        raise ValueError(f"source questions have duplicate keys (dataset, split, index), e.g. {duplicated.row(0)}")
    lf = traces.lazy()
    joined = lf.with_columns(pl.col("index").cast(pl.Int64, strict=False).alias("_index")).join(
        questions.lazy().rename({"index": "_index"}), on=["dataset", "split", "_index"], how="left",
        maintain_order="left",
    )
    is_placeholder = pl.col("question").str.strip_chars() == PLACEHOLDER
    return joined.with_columns(
        pl.when(is_placeholder & pl.col("source_question").is_not_null())
        .then(pl.col("source_question")).otherwise(pl.col("question")).alias("question")
    ).drop("_index", "source_question")


def load_all_source_questions(traces: pl.LazyFrame, sources: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Source questions for every (dataset, split) the traces need; `sources` maps OCR2 dataset names to hub ids or
    local paths (defaults: the hub ids in SOURCE_DATASETS)."""
    locations = {name: hub for name, (hub, _) in SOURCE_DATASETS.items()}
    locations.update(sources or {})
    frames = [source_questions(name, locations[name], splits) for name, splits in needed_splits(traces).items()]
    return pl.concat(frames) if frames else source_questions("taco", "", [])


def _as_batches(ocr2: datasets.Dataset | pl.LazyFrame | pl.DataFrame, rows: int):
    if isinstance(ocr2, datasets.Dataset):
        # The Arrow table is memory-mapped from the datasets cache; only one batch at a time is copied.
        table = ocr2.data.table
        for offset in range(0, table.num_rows, rows):
            yield pl.from_arrow(table.slice(offset, rows))
    else:
        yield from ocr2.lazy().collect_batches(chunk_size=rows)


def write_recovered_traces(ocr2: datasets.Dataset | pl.LazyFrame | pl.DataFrame, questions: pl.DataFrame,
                           out_dir: str | Path, *, rows_per_shard: int = 20_000) -> list[Path]:
    """Stream the traces, recover questions, write TRACE_SCHEMA parquet shards `traces-00000.parquet`, ...

    Memory stays at one batch plus the source question table, whatever the size of OCR2.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    schema = arrow_schema(TRACE_SCHEMA)
    paths: list[Path] = []
    for batch in _as_batches(ocr2, rows_per_shard):
        if batch.height == 0:
            continue
        recovered = recover_questions(batch, questions).collect()
        absent = [pl.lit(None, dtype=dt).alias(c) for c, dt in TRACE_SCHEMA.items() if c not in recovered.columns]
        table = recovered.with_columns(absent).select(
            [pl.col(c).cast(dt, strict=False) if c == "pass_rate" else pl.col(c).cast(dt)
             for c, dt in TRACE_SCHEMA.items()]).to_arrow().cast(schema)
        path = out / f"traces-{len(paths):05d}.parquet"
        pq.write_table(table, path, compression="zstd")
        paths.append(path)
    return paths
