"""OpenCodeReasoning-2 traces and the recovery of their question text.

OCR2 ships `question` as the placeholder "-"; its dataset card recovers the text from the source dataset row
(`dataset`, `split`, `index` = row number in that split):
- `taco` (BAAI/TACO) and `apps` (codeparrot/apps): the `question` column;
- `code_contests` (deepmind/code_contests): `description`;
- `open-r1/codeforces`: `description`, then "Input" + `input_format`, "Output" + `output_format`, "Examples" with
  each example's input and output, and "Note" + `note` (`codeforces_question`, following the card's code).
Here the recovery is one polars join on (dataset, split, index) against a small table of source questions, streamed
over the traces batch by batch, never a lookup per row.

Every source is a hub id, a local folder or an object-store URL holding the repo's files in the hub layout, read
by the same `load_source` call: `datasets.load_dataset(<parquet|json>, data_files=<root>/<the split's files>)`,
where root is `hf://datasets/<id>@<revision>` for a hub id. Naming the files, rather than `load_dataset(<id>)`,
is what keeps script-based repos loadable: datasets >= 4 refuses any repo (or local copy) that ships a loading
script, and TACO (`TACO.py`) and APPS (`apps.py`) do, next to their data files. Layouts (OCR2_LAYOUT,
SOURCE_DATASETS):
- nvidia/OpenCodeReasoning-2: `train/<python|cpp>/train-*.parquet` (e.g. `train/python/train-00000-of-00070.parquet`
  at revision eadf535, as `datasets` records it in a cached copy's download checksums);
- BAAI/TACO: `ALL/<split>-*.parquet` (the parquet export of the script's "ALL" config, rows in the script's order;
  the script reads `train/data-*.arrow`, which datasets can no longer run);
- codeparrot/apps: `<split>.jsonl` at the root (what `apps.py` reads, in file order);
- deepmind/code_contests: `data/<split>-*.parquet` (train, valid, test);
- open-r1/codeforces: `data/<split>-*.parquet` (the default config).
Tests use small local copies in these layouts, with the real column names, next to a script file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import datasets
import polars as pl
import pyarrow.parquet as pq

from valley_assets.data.schema import TRACE_SCHEMA, arrow_schema
from valley_assets.storage import StudyStorage

OCR2_HUB_ID = "nvidia/OpenCodeReasoning-2"
PLACEHOLDER = "-"



@dataclass(frozen=True)
class RepoLayout:
    """Where a dataset repo keeps one split's rows: a glob relative to the repo root ("{split}" is replaced)."""

    hub_id: str
    builder: str  # the `datasets` packaged builder: "parquet" or "json"
    split_files: str
    question_column: str | None = None  # None: composed by codeforces_question

    def files(self, split: str) -> str:
        return self.split_files.format(split=split)


# The OCR2 repo itself: one folder of parquet shards per language split, under `train/`.
OCR2_LAYOUT = RepoLayout(OCR2_HUB_ID, "parquet", "train/{split}/train-*.parquet")
# OCR2 `dataset` value -> the source repo's layout (see the module docstring).
SOURCE_DATASETS: dict[str, RepoLayout] = {
    "taco": RepoLayout("BAAI/TACO", "parquet", "ALL/{split}-*.parquet", "question"),
    "apps": RepoLayout("codeparrot/apps", "json", "{split}.jsonl", "question"),
    "code_contests": RepoLayout("deepmind/code_contests", "parquet", "data/{split}-*.parquet", "description"),
    "open-r1/codeforces": RepoLayout("open-r1/codeforces", "parquet", "data/{split}-*.parquet"),
}
_BUILDER_OF_SUFFIX = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
# Hub revisions that HfFileSystem takes unquoted in a path; other revisions (branches, tags) are URL-quoted.
_SPECIAL_REVISION_PREFIXES = ("refs/convert/", "refs/pr/")
CODEFORCES_COLUMNS = ("description", "input_format", "output_format", "examples", "note")
QUESTION_KEY = ("dataset", "split", "index")


def hub_root(repo_id: str, revision: str = "main") -> str:
    """The hf:// root of a hub dataset repo at a revision (branch, tag, commit, refs/convert/parquet, refs/pr/N)."""
    rev = revision if revision.startswith(_SPECIAL_REVISION_PREFIXES) else quote(revision, safe="")
    return f"hf://datasets/{repo_id}@{rev}"


def split_data_files(source: str, layout: RepoLayout, split: str, *, revision: str = "main") -> str:
    """The data_files pattern of one split: under a local folder or URL as given, or under the hub repo `source`."""
    if Path(source).is_dir() or "://" in source:
        return f"{source.rstrip('/')}/{layout.files(split)}"
    return f"{hub_root(source, revision)}/{layout.files(split)}"


def _is_folder(source: str) -> bool:
    """A local folder or an object-store folder (hub repos, hf://, are listed by `datasets` itself)."""
    if "://" not in source:
        return Path(source).is_dir()
    return not source.startswith("hf://") and StudyStorage(source).is_dir()


def _folder_has(source: str, relative_glob: str) -> bool:
    """Whether a local or object-store folder holds a file matching `relative_glob` (e.g. `ALL/train-*.parquet`)."""
    *folders, pattern = relative_glob.split("/")
    return bool(StudyStorage(source).list(*folders, pattern=pattern))


def load_source(source: str, layout: RepoLayout, *, split: str, revision: str = "main",
                columns: Iterable[str] | None = None) -> datasets.Dataset:
    """One split of a dataset repo in `layout`: a hub id, a local folder or URL holding the repo's files, or a
    single data file (loaded as that split). The repo's own loading script, if any, is never used."""
    wanted = list(columns) if columns is not None else None
    path = Path(source)
    if path.is_file():
        builder = _BUILDER_OF_SUFFIX.get(path.suffix)
        if builder is None:
            raise ValueError(f"cannot read {source}: unknown file type {path.suffix!r}")
        pattern = str(path)
    else:
        builder, pattern = layout.builder, split_data_files(source, layout, split, revision=revision)
        if _is_folder(source) and not _folder_has(source, layout.files(split)):
            raise FileNotFoundError(f"{source}: no files for split {split!r} ({layout.files(split)}, the layout of "
                                    f"{layout.hub_id})")
    # Parquet reads only the wanted columns (TACO's solutions column alone is gigabytes).
    options = {"columns": wanted} if builder == "parquet" and wanted is not None else {}
    ds = datasets.load_dataset(builder, data_files={split: pattern}, split=split, **options)
    if wanted is not None:
        absent = [c for c in wanted if c not in ds.column_names]
        if absent:
            raise KeyError(f"{source} split {split!r} has no column(s) {absent} (has: {ds.column_names})")
        ds = ds.select_columns(wanted)
    return ds


def load_ocr2(source: str = OCR2_HUB_ID, *, split: str = "python", max_rows: int | None = None,
              revision: str = "main") -> datasets.Dataset:
    """OCR2 traces of a split ("python" or "cpp"): the hub id or a local / object-store copy of the repo
    (`train/<split>/train-*.parquet`, OCR2_LAYOUT), or a plain folder / file / glob of OCR2-shaped parquet shards. All go
    through the same `load_dataset("parquet", data_files=...)`; only how the files are named differs."""
    path = Path(source)
    if path.is_dir() and not _folder_has(source, OCR2_LAYOUT.files(split)):
        files: str | list[str] = sorted(str(p) for p in path.rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"no parquet shards under {source}")
    elif path.is_file() or ("*" in source and "://" not in source):
        files = source
    else:
        if _is_folder(source) and not _folder_has(source, OCR2_LAYOUT.files(split)):
            raise FileNotFoundError(f"{source}: no OCR2 shards for split {split!r} ({OCR2_LAYOUT.files(split)}, the "
                                    f"layout of {OCR2_HUB_ID})")
        files = split_data_files(source, OCR2_LAYOUT, split, revision=revision)
    ds = datasets.load_dataset("parquet", data_files={"train": files}, split="train")
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
                     revision: str = "main") -> pl.DataFrame:
    """(dataset, split, index, source_question) for every row of the given splits of one source dataset."""
    if dataset_name not in SOURCE_DATASETS:
        raise ValueError(f"unknown OCR2 source dataset {dataset_name!r}; known: {sorted(SOURCE_DATASETS)}")
    layout = SOURCE_DATASETS[dataset_name]
    column = layout.question_column
    frames = []
    for split in sorted(set(splits)):
        if column is not None:
            ds = load_source(source, layout, split=split, revision=revision, columns=[column])
            texts = pl.from_arrow(ds.data.table.column(column))
            questions = pl.DataFrame({"source_question": texts}).with_columns(pl.col("source_question").cast(pl.String))
        else:
            ds = load_source(source, layout, split=split, revision=revision, columns=CODEFORCES_COLUMNS)
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
    locations = {name: layout.hub_id for name, layout in SOURCE_DATASETS.items()}
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
                           out_dir: str | Path, *, rows_per_shard: int = 20_000) -> list[str]:
    """Stream the traces, recover questions, write TRACE_SCHEMA parquet shards `traces-00000.parquet`, ... into
    `out_dir` (a local folder or an object-store URL); returns the shards' locations.

    Memory stays at one batch plus the source question table, whatever the size of OCR2. Each shard appears only
    when complete (StudyStorage.open_atomic).
    """
    out = StudyStorage(out_dir)
    out.makedirs()
    schema = arrow_schema(TRACE_SCHEMA)
    written: list[str] = []
    for batch in _as_batches(ocr2, rows_per_shard):
        if batch.height == 0:
            continue
        recovered = recover_questions(batch, questions).collect()
        absent = [pl.lit(None, dtype=dt).alias(c) for c, dt in TRACE_SCHEMA.items() if c not in recovered.columns]
        table = recovered.with_columns(absent).select(
            [pl.col(c).cast(dt, strict=False) if c == "pass_rate" else pl.col(c).cast(dt)
             for c, dt in TRACE_SCHEMA.items()]).to_arrow().cast(schema)
        name = f"traces-{len(written):05d}.parquet"
        with out.open_atomic(name) as shard:
            pq.write_table(table, shard, compression="zstd")
        written.append(out.uri(name))
    return written
