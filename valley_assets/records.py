"""The records that travel between stages (docs/architecture.md "Records"), typed once.

TypedDicts, so a record stays the plain dict that JSONL, parquet and the grader already carry (no conversion on the
hot paths), while type checkers and readers know its fields. Where a stage reads another stage's output from
storage it checks the rows with `check_rows` / `check_record`: a missing or mistyped field fails there, naming the
row and the field, instead of surfacing later as a KeyError or a wrong number.

Dependency-free (the standard library only): worker processes, the grader host side and the assets all import it.
The grader runner's own request/response protocol lives with the runner (valley_assets/grading/runner.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypedDict, get_args, get_origin, get_type_hints

Difficulty = Literal["easy", "medium", "hard"]
FinishReason = Literal["stop", "length"]


class Problem(TypedDict):
    """A LiveCodeBench `code_generation_lite` problem; every field a string (tests and metadata as JSON strings)."""

    question_id: str
    question_title: str
    question_content: str
    platform: str
    contest_date: str  # ISO 8601
    starter_code: str  # "" for stdin problems
    difficulty: str  # easy | medium | hard for LCB; "unknown" where a source has none (data.lcb.load_shared_lcb)
    public_test_cases: str  # JSON list of {input, output, testtype: stdin | functional}
    private_test_cases: str  # JSON, or base64 -> zlib -> pickle -> JSON
    metadata: str  # JSON; {"func_name": ...} for functional problems


class Sample(TypedDict):
    """One generated answer (a line of `generations/.../samples.jsonl`)."""

    question_id: str
    sample_idx: int
    prompt_id: str
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


class Grade(TypedDict):
    """The grader's verdict on one sample (`results[question_id][sample_idx]` of `valley grade --out`)."""

    passed: bool
    verdict: str
    tests_run: int
    time_s: float


class ScoreValues(TypedDict):
    """What `science.metrics.score_rows` computes for one prompt id x date window x difficulty x metric."""

    date_window: str
    prompt_id: str
    difficulty: str
    metric: str
    value: float
    n_problems: int
    n_samples: int
    stderr: float


class ScoreRow(TypedDict):
    """One row of the scores table (scores/runs/<run>.parquet): `ScoreValues` plus who was scored, and when."""

    student: str
    data_size: str
    arm: str
    release: str
    date_window: str  # "all" or "<start>..<end>"
    prompt_id: str
    difficulty: str  # all | easy | medium | hard
    metric: str  # pass@1 | completion_rate | think_rate
    value: float
    n_problems: int
    n_samples: int
    stderr: float
    scored_at: str


class RecordError(ValueError):
    """A row that is not the record it should be; the message names the row and the field."""


def record_fields(record: type) -> dict[str, Any]:
    """Field name -> type of a record (`get_type_hints`, so Literal fields keep their allowed values)."""
    return get_type_hints(record)


def _type_ok(value: Any, kind: Any) -> bool:
    if get_origin(kind) is Literal:
        return value in get_args(kind)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _kind_name(kind: Any) -> str:
    if get_origin(kind) is Literal:
        return f"one of {get_args(kind)}"
    return {str: "a string", int: "an int", float: "a number", bool: "a bool"}.get(kind, getattr(kind, "__name__", str(kind)))


def check_record(row: object, record: type, *, where: str, required: Iterable[str] | None = None) -> dict:
    """`row` if it is a JSON object holding `required` (default: every field of `record`) with the record's types;
    else a `RecordError` naming `where` and the field. Fields beyond the record are allowed (sources add their own)."""
    if not isinstance(row, Mapping):
        raise RecordError(f"{where}: a {record.__name__} must be a JSON object, got {type(row).__name__}")
    fields = record_fields(record)
    names = list(fields) if required is None else list(required)
    for name in names:
        if name not in row:
            raise RecordError(f"{where}: {name} is missing (a {record.__name__} needs {names})")
        if not _type_ok(row[name], fields[name]):
            raise RecordError(f"{where}: {name} must be {_kind_name(fields[name])}, got {row[name]!r:.80}")
    return row  # type: ignore[return-value]


def check_rows(rows: Iterable[object], record: type, *, source: str, required: Iterable[str] | None = None) -> list:
    """`check_record` on every row; errors read `<source> row <i>: <field> ...` (i counts from 0)."""
    names = None if required is None else tuple(required)
    return [check_record(row, record, where=f"{source} row {i}", required=names) for i, row in enumerate(rows)]
