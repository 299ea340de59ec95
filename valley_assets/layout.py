"""Where every artefact of a study lives: one object owns the tree of docs/architecture.md "Storage layout".

`StudyLayout(storage)` names each location (`layout.subset("1k")`, `layout.generations(student, data_size, arm,
release, prompt_id)`, ...) as a `StoredPath`: the storage it is on and its parts under the root. A `StoredPath` reads,
writes, lists and gives its URI through `StudyStorage`, so the same call works on a local root and on an object-store
URL (`s3://bucket/study`). Assets ask the layout and never build path tuples themselves (tests/test_layout.py scans
`valley_assets/defs/` for that); a new artefact gets a method here, and the tree in docs/architecture.md with it.

Pure: no Dagster, no study config. The Dagster resource around it is `resources.StudyLayoutResource`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from valley_assets.storage import StudyStorage

MAIN_ARM = "main"  # the scaling curve's checkpoints; any other arm is an ablation arm
SCORE_TABLES = ("runs", "per_problem")
CHECKPOINT_MANIFEST = "checkpoint.json"
PROVENANCE_MANIFEST = "provenance.json"  # = analysis.provenance.MANIFEST_NAME (kept in step by a test)


@dataclass(frozen=True)
class StoredPath:
    """One file or folder under a study root; every operation goes through `StudyStorage`."""

    storage: StudyStorage
    parts: tuple[str, ...]

    @property
    def uri(self) -> str:
        """The location as programs take it: a local path, or a URL for an object-store root."""
        return self.storage.uri(*self.parts)

    @property
    def name(self) -> str:
        return self.parts[-1]

    def __str__(self) -> str:
        return self.uri

    def exists(self) -> bool:
        return self.storage.exists(*self.parts)

    def is_file(self) -> bool:
        return self.storage.is_file(*self.parts)

    def version(self) -> str:
        return self.storage.version(*self.parts)

    # folders
    def list(self, pattern: str = "*") -> list[str]:
        return self.storage.list(*self.parts, pattern=pattern)

    def remove_matching(self, pattern: str) -> int:
        return self.storage.remove_matching(*self.parts, pattern=pattern)

    def makedirs(self) -> None:
        self.storage.makedirs(*self.parts)

    def local_path(self) -> Path:
        return self.storage.local_path(*self.parts)

    def local_work_dir(self) -> Path:
        return self.storage.local_work_dir(*self.parts)

    def synced_work_dir(self, interval_s: float = 30.0):
        return self.storage.synced_work_dir(*self.parts, interval_s=interval_s)

    # files
    def read_bytes(self) -> bytes:
        return self.storage.read_bytes(*self.parts)

    def write_bytes(self, data: bytes) -> str:
        self.storage.write_bytes(data, *self.parts)
        return self.uri

    def read_json(self):
        return self.storage.read_json(*self.parts)

    def write_json(self, obj) -> str:
        self.storage.write_json(obj, *self.parts)
        return self.uri

    def read_jsonl(self) -> list[dict]:
        return self.storage.read_jsonl(*self.parts)

    def write_jsonl(self, rows: Iterable[dict]) -> str:
        self.storage.write_jsonl(rows, *self.parts)
        return self.uri

    def read_parquet(self) -> pl.DataFrame:
        return self.storage.read_parquet(*self.parts)

    def scan_parquet(self) -> pl.LazyFrame:
        """Scanned lazily where it is stored, reading only the columns and rows a query needs (polars reads object
        stores itself, with the same AWS_* environment as the storage)."""
        return pl.scan_parquet(self.uri)

    def write_parquet(self, frame: pl.DataFrame) -> str:
        self.storage.write_parquet(frame, *self.parts)
        return self.uri

    def upload(self, local_file: str | os.PathLike) -> str:
        return self.storage.upload(local_file, *self.parts)


class StudyLayout:
    """The study's storage tree (docs/architecture.md "Storage layout") on one `StudyStorage` root."""

    def __init__(self, storage: StudyStorage | str):
        self.storage = storage if isinstance(storage, StudyStorage) else StudyStorage(storage)

    def __repr__(self) -> str:
        return f"StudyLayout({self.storage.root})"

    @property
    def is_local(self) -> bool:
        return self.storage.is_local

    def _at(self, *parts: str) -> StoredPath:
        self.storage.path(*parts)  # refuses empty, absolute and `..` parts, naming the part
        return StoredPath(self.storage, parts)

    # --- problems and benchmark ----------------------------------------------------------------------------------
    def training_problems(self) -> StoredPath:
        return self._at("problems", "training.jsonl")

    def lcb_problems(self, release: str) -> StoredPath:
        return self._at("lcb", release, "problems.jsonl")

    def pool_overlap(self, release: str) -> StoredPath:
        """Which of the release's problems the training pool overlaps (written by each scoring on that release)."""
        return self._at("lcb", release, "pool_overlap.json")

    def lcb_source(self) -> StoredPath:
        """The demo's LiveCodeBench-style folder of `test*.jsonl` files (one release per file)."""
        return self._at("lcb_source")

    # --- teachers ------------------------------------------------------------------------------------------------
    def teacher_traces(self) -> StoredPath:
        """Folder of the main teacher's OCR2-schema shards (`*.parquet`)."""
        return self._at("traces", "teacher_traces")

    def extra_teacher_traces(self, teacher: str | None = None) -> StoredPath:
        """Folder of every extra teacher's shard folders, or of one teacher's shards."""
        return self._at("traces", "extra_teacher_traces", *([teacher] if teacher else []))

    def teacher_work(self, teacher: str) -> StoredPath:
        """An extra teacher's resumable work (docs/teachers.md)."""
        return self._at("teacher_work", teacher)

    def teacher_work_problems(self, teacher: str) -> StoredPath:
        """The problems a vLLM teacher Job still has to answer."""
        return self._at("teacher_work", teacher, "problems.jsonl")

    def teacher_work_samples(self, teacher: str) -> StoredPath:
        """The samples a teacher published (appended per chunk)."""
        return self._at("teacher_work", teacher, "samples.jsonl")

    # --- pool and subsets ----------------------------------------------------------------------------------------
    def pool_dir(self) -> StoredPath:
        return self._at("pool")

    def pool(self) -> StoredPath:
        return self._at("pool", "pool.parquet")

    def pool_quarantine(self) -> StoredPath:
        return self._at("pool", "quarantine.parquet")

    def subset(self, data_size: str) -> StoredPath:
        return self._at("subsets", f"{data_size}.parquet")

    def ablation_subset(self, arm: str) -> StoredPath:
        return self._at("ablation", arm, "subset.parquet")

    # --- models and checkpoints ----------------------------------------------------------------------------------
    def base_model(self, student: str) -> StoredPath:
        """The demo's tiny student, built into storage (real students are hub ids or folders of their own)."""
        return self._at("models", student, "base")

    def checkpoint_dir(self, student: str, data_size: str, arm: str = MAIN_ARM) -> StoredPath:
        """A main checkpoint per data size; an ablation checkpoint per arm (continued from one stage data size, so
        the size is not part of its path)."""
        if arm == MAIN_ARM:
            return self._at("checkpoints", student, data_size)
        return self._at("ablation", arm, "checkpoints", student)

    def checkpoint_manifest(self, student: str, data_size: str, arm: str = MAIN_ARM) -> StoredPath:
        """`checkpoint.json`, written last: `{"model": <dir, URL or hub id>, ...}`."""
        return self._at(*self.checkpoint_dir(student, data_size, arm).parts, CHECKPOINT_MANIFEST)

    def checkpoint_provenance(self, student: str, data_size: str, arm: str = MAIN_ARM) -> StoredPath:
        return self._at(*self.checkpoint_dir(student, data_size, arm).parts, PROVENANCE_MANIFEST)

    def sft_train_file(self, student: str, data_size: str, arm: str = MAIN_ARM) -> StoredPath:
        """The SFT chats (JSONL of `{"messages": [...]}`) the checkpoint was trained on."""
        return self._at(*self.checkpoint_dir(student, data_size, arm).parts, "train.jsonl")

    def sft_output_dir(self, student: str, data_size: str, arm: str = MAIN_ARM) -> StoredPath:
        """The training run's output_dir: intermediate checkpoints, then the final model (`_COMPLETE` last)."""
        return self._at(*self.checkpoint_dir(student, data_size, arm).parts, "run")

    # --- evaluation ----------------------------------------------------------------------------------------------
    @staticmethod
    def eval_label(data_size: str, arm: str = MAIN_ARM) -> str:
        """What names a checkpoint's evaluation folders: its data size, or `ablation-<arm>`."""
        return data_size if arm == MAIN_ARM else f"ablation-{arm}"

    def _eval(self, kind: str, student: str, data_size: str, arm: str, release: str, prompt_id: str) -> tuple:
        return (kind, student, self.eval_label(data_size, arm), release, prompt_id)

    def generations(self, student: str, data_size: str, arm: str, release: str, prompt_id: str) -> StoredPath:
        return self._at(*self._eval("generations", student, data_size, arm, release, prompt_id), "samples.jsonl")

    def grades(self, student: str, data_size: str, arm: str, release: str, prompt_id: str) -> StoredPath:
        return self._at(*self._eval("grades", student, data_size, arm, release, prompt_id), "results.json")

    def grading_work(self, student: str, data_size: str, arm: str, release: str, prompt_id: str) -> StoredPath:
        """The grader's resume log folder (`results.samples.jsonl`), synced while grading runs."""
        return self._at(*self._eval("grades", student, data_size, arm, release, prompt_id), "work")

    def scores_table(self, table: str) -> StoredPath:
        """Folder of one scores table (`runs` or `per_problem`): one parquet file per scoring run."""
        if table not in SCORE_TABLES:
            raise ValueError(f"unknown scores table {table!r}; tables: {SCORE_TABLES}")
        return self._at("scores", table)

    def scores_file(self, table: str, run_tag: str) -> StoredPath:
        return self._at(*self.scores_table(table).parts, f"{run_tag}.parquet")

    # --- reports -------------------------------------------------------------------------------------------------
    def report_html(self) -> StoredPath:
        return self._at("reports", "valley_report.html")

    def valley_curve_png(self) -> StoredPath:
        return self._at("reports", "valley_curve.png")

    def valley_curve_json(self) -> StoredPath:
        return self._at("reports", "valley_curve.json")

    def ablation_report_json(self) -> StoredPath:
        return self._at("reports", "ablation_report.json")
