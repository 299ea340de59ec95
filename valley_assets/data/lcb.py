"""LiveCodeBench `code_generation_lite` problems, by release tag and date window.

The hub dataset is a folder of `test*.jsonl` files, one per release increment; its loading script maps release
tags to files, and so does `release_files` here:
  release_v1 = test.jsonl; release_vN = test.jsonl, test2.jsonl, ..., testN.jsonl; release_latest = all;
  vN = the Nth file alone; vX_vY = files X..Y (e.g. v4_v5 = test4.jsonl, test5.jsonl).
There is no fixed newest version: which files exist is read from the source (a folder's listing, or the hub repo's
file list through huggingface_hub, generation/releases.py), so a `test7.jsonl` makes release_v7 loadable the day it
appears. `load_lcb` reads those files (from the hub through `datasets`, via hf:// paths, or from a local folder or
object-store URL), decodes
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
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path

import datasets

from valley_assets.data.schema import PROBLEM_FIELDS
from valley_assets.records import Problem, check_record

LCB_HUB_ID = "livecodebench/code_generation_lite"
DIFFICULTIES = ("easy", "medium", "hard")
_RELEASE_RE = re.compile(r"^release_v(\d+)$")
_SINGLE_RE = re.compile(r"^v(\d+)$")
_RANGE_RE = re.compile(r"^v(\d+)_v(\d+)$")


def _file_of_version(v: int) -> str:
    return "test.jsonl" if v == 1 else f"test{v}.jsonl"


def release_files(tag: str, *, available_versions: Iterable[int] | None = None) -> list[str]:
    """The test*.jsonl files of a release tag (see the module docstring).

    `available_versions`: the file numbers the source holds (`source_versions`). With it, a tag needing a file the
    source lacks is a FileNotFoundError naming the files, and `release_latest` means every version up to the
    newest; without it, only the tag's syntax is checked (and `release_latest` cannot be resolved).
    """
    def check(v: int) -> int:
        if v < 1:
            raise ValueError(f"release tag {tag!r}: versions start at 1, got {v}")
        return v

    if tag == "release_latest":
        if not available_versions:
            raise ValueError("release tag 'release_latest' needs the source's file listing (available_versions)")
        versions = list(range(1, max(available_versions) + 1))
    elif m := _RELEASE_RE.match(tag):
        versions = list(range(1, check(int(m.group(1))) + 1))
    elif m := _SINGLE_RE.match(tag):
        versions = [check(int(m.group(1)))]
    elif m := _RANGE_RE.match(tag):
        lo, hi = check(int(m.group(1))), check(int(m.group(2)))
        if lo > hi:
            raise ValueError(f"release tag {tag!r}: range start after its end")
        versions = list(range(lo, hi + 1))
    else:
        raise ValueError(f"unknown LiveCodeBench release tag {tag!r}: expected release_vN, release_latest, vN or "
                         f"vX_vY")
    files = [_file_of_version(v) for v in versions]
    if available_versions is not None:
        absent = [f for v, f in zip(versions, files, strict=True) if v not in set(available_versions)]
        if absent:
            have = [_file_of_version(v) for v in sorted(set(available_versions))]
            raise FileNotFoundError(f"release {tag} needs {absent}, which the source does not hold (it has {have})")
    return files


def source_versions(source: str, *, revision: str = "main", hf_api=None) -> list[int]:
    """The release file numbers (`test.jsonl` = 1, `testN.jsonl` = N) a folder, object-store URL or hub repo holds."""
    from valley_assets.generation.releases import list_source_files, release_file_number

    names = list_source_files(source, hf_api=hf_api, revision=revision)
    return sorted({n for n in map(release_file_number, names) if n is not None})


def release_locations(source: str, files: list[str], *, revision: str = "main") -> list[str]:
    """Where `files` of a source are read from: hf:// paths in the hub repo, or under the folder / URL."""
    from valley_assets.generation.releases import HUB_PREFIX, is_hub_source

    if is_hub_source(source):
        return [f"hf://datasets/{source.removeprefix(HUB_PREFIX)}@{revision}/{f}" for f in files]
    return [f"{source.rstrip('/')}/{f}" for f in files]


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


def to_problem_record(raw: dict, *, where: str) -> Problem:
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
    return check_record(record, Problem, where=f"{where} (question_id {record['question_id']})")


def load_lcb(source: str = LCB_HUB_ID, *, release: str = "release_v6", start_date: str | date | None = None,
             end_date: str | date | None = None, difficulties: tuple[str, ...] | None = None,
             revision: str = "main", hf_api=None) -> list[dict]:
    """Problems of a release tag, from the hub (through `datasets`) or a local / object-store folder of test*.jsonl
    files. The tag is resolved against the files the source holds (`source_versions`): no newest version is fixed.

    `start_date` / `end_date` bound contest_date (inclusive, by day); `difficulties` keeps only those levels.
    Records are sorted by (contest_date, question_id).
    """
    from valley_assets.generation.releases import is_hub_source, split_revision

    release, pinned = split_revision(release)  # `release_v6-rev<sha>`: the release as published at that commit
    if pinned is not None:
        if not is_hub_source(source):
            raise ValueError(f"release key names hub commit {pinned!r}, but the source {source!r} is a folder")
        revision = pinned
    try:
        files = release_files(release, available_versions=source_versions(source, revision=revision, hf_api=hf_api))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{source}: {error}") from None
    data_files = release_locations(source, files, revision=revision)
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


def load_shared_lcb(path: str | Path) -> list[Problem]:
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
        records.append(Problem(
            question_id=qid,
            question_title="",
            question_content=item["problem"],
            platform="leetcode" if functional else "unknown",
            contest_date="",
            starter_code=item["starter_code"] or "",
            difficulty="unknown",
            public_test_cases=json.dumps([{"input": t["input"], "output": t["output"],
                                           "testtype": t["testtype"]} for t in tests]),
            private_test_cases="[]",
            metadata=json.dumps(metadata),
        ))
    return records
