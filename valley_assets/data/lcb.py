"""LiveCodeBench `code_generation_lite` problems, by release tag and date window.

The hub dataset is a folder of `test*.jsonl` files, one per release increment; its loading script maps release
tags to files, and so does `release_files` here:
  release_v1 = test.jsonl; release_vN = test.jsonl, test2.jsonl, ..., testN.jsonl; release_latest = all;
  vN = the Nth file alone; vX_vY = files X..Y (e.g. v4_v5 = test4.jsonl, test5.jsonl).
`load_lcb` reads those files (from the hub through `datasets`, via hf:// paths, or from a local folder), decodes
private tests (a JSON string, or base64 -> zlib -> pickle -> JSON string, as the LCB harness does), filters by
contest_date window and difficulty, and returns problem records of docs/architecture.md with every field a string
and `private_test_cases` as a plain JSON string.

`load_shared_lcb` adapts the public-tests-only LCB file in /work/shared/data to the same records.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import pickle
import re
import zlib
from datetime import date, datetime
from pathlib import Path

import datasets

from valley_assets.data.schema import PROBLEM_FIELDS

LCB_HUB_ID = "livecodebench/code_generation_lite"
LATEST_VERSION = 6
DIFFICULTIES = ("easy", "medium", "hard")
_RELEASE_RE = re.compile(r"^release_v(\d+)$")
_SINGLE_RE = re.compile(r"^v(\d+)$")
_RANGE_RE = re.compile(r"^v(\d+)_v(\d+)$")


def _file_of_version(v: int) -> str:
    return "test.jsonl" if v == 1 else f"test{v}.jsonl"


def release_files(tag: str, *, latest_version: int = LATEST_VERSION) -> list[str]:
    """The test*.jsonl files of a release tag (see the module docstring)."""
    def check(v: int) -> int:
        if not 1 <= v <= latest_version:
            raise ValueError(f"release tag {tag!r}: version {v} outside 1..{latest_version}")
        return v

    if tag == "release_latest":
        return [_file_of_version(v) for v in range(1, latest_version + 1)]
    if m := _RELEASE_RE.match(tag):
        return [_file_of_version(v) for v in range(1, check(int(m.group(1))) + 1)]
    if m := _SINGLE_RE.match(tag):
        return [_file_of_version(check(int(m.group(1))))]
    if m := _RANGE_RE.match(tag):
        lo, hi = check(int(m.group(1))), check(int(m.group(2)))
        if lo > hi:
            raise ValueError(f"release tag {tag!r}: range start after its end")
        return [_file_of_version(v) for v in range(lo, hi + 1)]
    raise ValueError(f"unknown LiveCodeBench release tag {tag!r}: expected release_vN, release_latest, vN or vX_vY")


def decode_private_tests(value: str, *, question_id: str = "?") -> str:
    """Private tests as a JSON string: returned as is when it parses as JSON, else base64 -> zlib -> pickle -> JSON.

    The pickle step runs on the LiveCodeBench release files only, the same trust the LCB harness places in them.
    """
    if not isinstance(value, str):
        raise ValueError(f"problem {question_id}: private_test_cases must be a string, got {type(value).__name__}")
    try:
        json.loads(value)
        return value
    except json.JSONDecodeError:
        pass
    try:
        decoded = pickle.loads(zlib.decompress(base64.b64decode(value.encode("utf-8"))))
        json.loads(decoded)
    except Exception as error:  # any failure means the field is neither format
        raise ValueError(f"problem {question_id}: private_test_cases is neither JSON nor "
                         f"base64/zlib/pickle JSON ({type(error).__name__}: {error})") from error
    return decoded


def _parse_date(value: str | date, *, field: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return datetime.fromisoformat(value).date()
    except (TypeError, ValueError) as error:
        raise ValueError(f"{field}: {value!r} is not an ISO 8601 date") from error


def to_problem_record(raw: dict, *, where: str) -> dict:
    """An LCB row as a problem record: every field a string, private tests decoded, difficulty checked."""
    missing = [f for f in PROBLEM_FIELDS if raw.get(f) is None]
    if missing:
        raise ValueError(f"{where} (question_id {raw.get('question_id')!r}): missing field(s) {missing}")
    record = {f: raw[f] if isinstance(raw[f], str) else str(raw[f]) for f in PROBLEM_FIELDS}
    if isinstance(raw["contest_date"], datetime):
        record["contest_date"] = raw["contest_date"].isoformat()
    if isinstance(raw["metadata"], dict):
        record["metadata"] = json.dumps(raw["metadata"])
    record["difficulty"] = record["difficulty"].lower()
    if record["difficulty"] not in DIFFICULTIES:
        raise ValueError(f"{where} (question_id {record['question_id']}): difficulty {raw['difficulty']!r} "
                         f"not one of {DIFFICULTIES}")
    _parse_date(record["contest_date"], field=f"{where} (question_id {record['question_id']}) contest_date")
    record["private_test_cases"] = decode_private_tests(record["private_test_cases"],
                                                        question_id=record["question_id"])
    return record


def load_lcb(source: str = LCB_HUB_ID, *, release: str = "release_v6", start_date: str | date | None = None,
             end_date: str | date | None = None, difficulties: tuple[str, ...] | None = None,
             latest_version: int = LATEST_VERSION, revision: str = "main") -> list[dict]:
    """Problems of a release tag, from the hub (through `datasets`) or a local folder of test*.jsonl files.

    `start_date` / `end_date` bound contest_date (inclusive, by day); `difficulties` keeps only those levels.
    Records are sorted by (contest_date, question_id).
    """
    files = release_files(release, latest_version=latest_version)
    folder = Path(source)
    if folder.is_dir():
        absent = [f for f in files if not (folder / f).is_file()]
        if absent:
            raise FileNotFoundError(f"{source}: release {release} needs {absent}, which are not there")
        data_files = [str(folder / f) for f in files]
    else:
        data_files = [f"hf://datasets/{source}@{revision}/{f}" for f in files]
    # One dataset per file: the files differ in column types (e.g. contest_date as string or timestamp).
    rows: list[dict] = []
    for data_file in data_files:
        ds = datasets.load_dataset("json", data_files={"test": data_file}, split="test")
        rows.extend((data_file, i, r) for i, r in enumerate(ds))
    start = _parse_date(start_date, field="start_date") if start_date is not None else None
    end = _parse_date(end_date, field="end_date") if end_date is not None else None
    if difficulties is not None:
        unknown = set(difficulties) - set(DIFFICULTIES)
        if unknown:
            raise ValueError(f"unknown difficulties {sorted(unknown)}; expected some of {DIFFICULTIES}")
    problems, seen = [], {}
    for data_file, i, raw in rows:
        where = f"{Path(data_file).name} row {i}"
        record = to_problem_record(raw, where=where)
        qid = record["question_id"]
        if qid in seen:
            raise ValueError(f"{where}: question_id {qid} also in {seen[qid]}")
        seen[qid] = where
        day = _parse_date(record["contest_date"], field=where)
        if (start and day < start) or (end and day > end):
            continue
        if difficulties is not None and record["difficulty"] not in difficulties:
            continue
        problems.append(record)
    return sorted(problems, key=lambda p: (p["contest_date"], p["question_id"]))


_FUNC_RE = re.compile(r"def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(\s*self")
SHARED_UNKNOWN_FIELDS = ("question_title", "contest_date", "difficulty", "private_test_cases", "platform")


def load_shared_lcb(path: str | Path) -> list[dict]:
    """Problem records from the shared public-tests file (`problem`, `starter_code`, `tests` only).

    That file has no ids, titles, dates, difficulty or private tests. Here: `question_id` = "lcbpub_" + the first
    12 hex digits of sha256(problem text) (stable across runs and file order); `platform` "leetcode" for functional
    problems (they are LeetCode's), "unknown" for stdin ones; `contest_date` "" and `difficulty` "unknown";
    `private_test_cases` "[]"; `metadata` holds `func_name` (from the starter code) for functional problems and
    `unknown_fields`, the fields above that are not real data. Unfit for date windows or difficulty splits; fit for
    decontamination and grader tests.
    """
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of problems, got {type(raw).__name__}")
    records, seen = [], {}
    for i, item in enumerate(raw):
        for key in ("problem", "starter_code", "tests"):
            if key not in item:
                raise ValueError(f"{path} problem #{i}: missing field {key!r}")
        tests = item["tests"]
        if isinstance(tests, str):
            try:
                tests = json.loads(tests)
            except json.JSONDecodeError:
                tests = ast.literal_eval(tests)
        if not isinstance(tests, list) or not tests:
            raise ValueError(f"{path} problem #{i}: tests must be a non-empty list")
        types = {t.get("testtype") for t in tests}
        if len(types) != 1 or not types <= {"stdin", "functional"}:
            raise ValueError(f"{path} problem #{i}: tests mix or lack test types {sorted(map(str, types))}")
        functional = types == {"functional"}
        metadata: dict = {"unknown_fields": list(SHARED_UNKNOWN_FIELDS)}
        if functional:
            names = _FUNC_RE.findall(item["starter_code"])
            if not names:
                raise ValueError(f"{path} problem #{i}: functional problem without a method in its starter code")
            metadata["func_name"] = names[-1]
        qid = "lcbpub_" + hashlib.sha256(item["problem"].encode("utf-8")).hexdigest()[:12]
        if qid in seen:
            raise ValueError(f"{path} problem #{i}: same problem text as problem #{seen[qid]}")
        seen[qid] = i
        records.append({
            "question_id": qid,
            "question_title": "",
            "question_content": item["problem"],
            "platform": "leetcode" if functional else "unknown",
            "contest_date": "",
            "starter_code": item["starter_code"] or "",
            "difficulty": "unknown",
            "public_test_cases": json.dumps([{"input": t["input"], "output": t["output"],
                                              "testtype": t["testtype"]} for t in tests]),
            "private_test_cases": "[]",
            "metadata": json.dumps(metadata),
        })
    return records
