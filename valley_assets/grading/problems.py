"""LiveCodeBench problems and generations: loading, decoding and validation into grading tasks.

A problem's tests are its public tests followed by its private tests, in that order, as the harness runs them.
Problems with a `func_name` in `metadata` are functional (LeetCode: `Solution().func_name(*args)`, one JSON value per
input line); the others read stdin. Bad rows raise `ProblemFormatError` naming the question and the field.
"""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path


class ProblemFormatError(ValueError):
    """A problem or generation record that cannot be graded; the message names the row and the field."""


@dataclass(frozen=True)
class GradingProblem:
    question_id: str
    difficulty: str
    fn_name: str | None  # None for stdin problems
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def decode_private_tests(s: str) -> list[dict]:
    """`private_test_cases` as stored on the hub: a JSON string, or base64 -> zlib -> pickle -> JSON string."""
    if not isinstance(s, str):
        raise ProblemFormatError(f"private_test_cases must be a string, got {type(s).__name__}")
    try:
        decoded = json.loads(s)
    except json.JSONDecodeError:
        try:
            # pickle.loads of a hub field: the harness does the same; the payload is a plain str by format.
            decoded = json.loads(pickle.loads(zlib.decompress(base64.b64decode(s.encode("utf-8"), validate=True))))
        except Exception as exc:  # noqa: BLE001 - any failure means the field is in neither format
            raise ProblemFormatError(
                f"private_test_cases is neither JSON nor base64->zlib->pickle->JSON: {exc!r}") from exc
    if not isinstance(decoded, list):
        raise ProblemFormatError(f"private_test_cases must decode to a list, got {type(decoded).__name__}")
    return decoded


def _tests_from_field(record: dict, field: str, qid: str) -> list[dict]:
    raw = record.get(field)
    if raw is None:
        raise ProblemFormatError(f"problem {qid!r}: missing field {field!r}")
    try:
        if field == "private_test_cases":
            tests = decode_private_tests(raw) if isinstance(raw, str) else raw
        else:
            tests = json.loads(raw) if isinstance(raw, str) else raw
    except (ProblemFormatError, json.JSONDecodeError) as exc:
        raise ProblemFormatError(f"problem {qid!r}: field {field!r}: {exc}") from exc
    if not isinstance(tests, list):
        raise ProblemFormatError(f"problem {qid!r}: field {field!r} must be a list of tests")
    for i, test in enumerate(tests):
        if not isinstance(test, dict) or not isinstance(test.get("input"), str) or not isinstance(
                test.get("output"), str):
            raise ProblemFormatError(f"problem {qid!r}: {field}[{i}] needs string 'input' and 'output'")
    return tests


def problem_from_record(record: dict) -> GradingProblem:
    """Validate one code_generation_lite record and turn it into a grading task."""
    if not isinstance(record, dict):
        raise ProblemFormatError(f"a problem must be a JSON object, got {type(record).__name__}")
    qid = record.get("question_id")
    if not isinstance(qid, str) or not qid:
        raise ProblemFormatError("problem without a string 'question_id'")
    difficulty = record.get("difficulty")
    if not isinstance(difficulty, str) or not difficulty:
        raise ProblemFormatError(f"problem {qid!r}: missing field 'difficulty'")
    metadata_raw = record.get("metadata", "{}")
    try:
        metadata = json.loads(metadata_raw) if isinstance(metadata_raw, str) else metadata_raw
    except json.JSONDecodeError as exc:
        raise ProblemFormatError(f"problem {qid!r}: field 'metadata' is not JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ProblemFormatError(f"problem {qid!r}: field 'metadata' must be a JSON object")
    fn_name = metadata.get("func_name")
    if fn_name is not None and (not isinstance(fn_name, str) or not fn_name.isidentifier()):
        raise ProblemFormatError(f"problem {qid!r}: metadata.func_name {fn_name!r} is not an identifier")
    tests = _tests_from_field(record, "public_test_cases", qid) + _tests_from_field(record, "private_test_cases", qid)
    if not tests:
        raise ProblemFormatError(f"problem {qid!r}: no tests in public_test_cases or private_test_cases")
    if fn_name:
        # The harness json-decodes these before running anything; a bad one is a data error, not a program error.
        for i, test in enumerate(tests):
            try:
                [json.loads(line) for line in test["input"].split("\n")]
                json.loads(test["output"])
            except json.JSONDecodeError as exc:
                raise ProblemFormatError(
                    f"problem {qid!r}: functional test {i} has an input line or output that is not JSON: {exc}"
                ) from exc
    return GradingProblem(
        question_id=qid,
        difficulty=difficulty,
        fn_name=fn_name or None,
        inputs=tuple(t["input"] for t in tests),
        outputs=tuple(t["output"] for t in tests),
    )


def load_problems_jsonl(path: str | Path) -> list[dict]:
    """Read LCB problem records, one JSON object per line (blank lines skipped); errors name the line."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ProblemFormatError(f"{path}:{line_no}: not a JSON object: {exc}") from exc
            if not isinstance(record, dict):
                raise ProblemFormatError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return records


def load_generations_json(path: str | Path) -> list[dict]:
    """Read `[{"question_id": ..., "code_list": [...]}, ...]`."""
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as exc:
            raise ProblemFormatError(f"{path}: not JSON: {exc}") from exc
    return data


def validate_generations(generations: list[dict], known_ids: set[str]) -> dict[str, list[str]]:
    """question_id -> code list; every entry must name a known problem, and each problem appears once."""
    if not isinstance(generations, list):
        raise ProblemFormatError("generations must be a JSON list of {question_id, code_list}")
    by_id: dict[str, list[str]] = {}
    for i, entry in enumerate(generations):
        if not isinstance(entry, dict):
            raise ProblemFormatError(f"generations[{i}] must be an object")
        qid = entry.get("question_id")
        if not isinstance(qid, str):
            raise ProblemFormatError(f"generations[{i}]: missing string 'question_id'")
        if qid not in known_ids:
            raise ProblemFormatError(f"generations[{i}]: question_id {qid!r} is not among the problems")
        if qid in by_id:
            raise ProblemFormatError(f"generations[{i}]: question_id {qid!r} appears twice")
        codes = entry.get("code_list")
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise ProblemFormatError(f"generations[{i}] ({qid!r}): 'code_list' must be a list of strings")
        if not codes:
            raise ProblemFormatError(f"generations[{i}] ({qid!r}): 'code_list' is empty")
        by_id[qid] = codes
    return by_id
