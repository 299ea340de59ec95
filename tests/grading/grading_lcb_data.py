"""Turn the shared real LCB/Codeforces problems into code_generation_lite records, and write programs for them.

The shared files hold real public tests but no ids, dates, difficulties or private tests, so records get synthetic
ids and difficulties; a problem with several tests keeps the first as public and stores the rest as private tests
in the hub's compressed form (base64 -> zlib -> pickle -> JSON), so both decoders run on real data.
Programs are "oracles": they answer from a table of the tests, so they are correct by construction and variants
(formatting, exits, wrong answers) have verdicts that follow from the harness rules alone.
"""

from __future__ import annotations

import ast
import base64
import json
import pickle
import re
import zlib
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LCB_FILE = SHARED / "lcb_2023-05_to_2024-07_public_tests.json"
CF_FILE = SHARED / "codeforces_408_tests.json"
DIFFICULTIES = ("easy", "medium", "hard")


def require_shared_data() -> None:
    if not (LCB_FILE.exists() and CF_FILE.exists()):
        pytest.skip(f"shared real data not found at {SHARED} (only present in the project's build environment)")


def encode_private(tests: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def _record(qid: str, i: int, tests: list[dict], func_name: str | None) -> dict:
    testtype = "functional" if func_name else "stdin"
    tests = [{"input": t["input"], "output": t["output"], "testtype": testtype} for t in tests]
    public, private = tests[:1], tests[1:]
    return {
        "question_id": qid, "question_title": qid, "question_content": "", "platform": "leetcode" if func_name
        else "atcoder", "contest_date": "2024-01-01T00:00:00", "starter_code": "", "difficulty":
        DIFFICULTIES[i % 3], "public_test_cases": json.dumps(public),
        "private_test_cases": encode_private(private) if i % 2 else json.dumps(private),
        "metadata": json.dumps({"func_name": func_name} if func_name else {}),
    }


def lcb_records() -> list[dict]:
    require_shared_data()
    records = []
    for i, p in enumerate(json.loads(LCB_FILE.read_text())):
        func_name = None
        if p["starter_code"]:
            func_name = re.search(r"def\s+(\w+)\s*\(\s*self", p["starter_code"]).group(1)
        records.append(_record(f"lcb{i:04d}", i, p["tests"], func_name))
    return records


def codeforces_records() -> list[dict]:
    require_shared_data()
    return [_record(f"cf{i:04d}", i, ast.literal_eval(p["tests"]) if isinstance(p["tests"], str) else p["tests"],
                    None) for i, p in enumerate(json.loads(CF_FILE.read_text()))]


def tests_of(record: dict) -> list[dict]:
    from valley_assets.grading import decode_private_tests

    return json.loads(record["public_test_cases"]) + decode_private_tests(record["private_test_cases"])


def stdin_oracle(record: dict, transform: str = "lambda s: s", reader: str = "sys.stdin.read()",
                 main_guard: bool = False, finish: str = "") -> str:
    """A stdin program printing the expected output of its input (after `transform`)."""
    table = {t["input"]: t["output"] for t in tests_of(record)}
    body = (f"data = {reader}\nout = TRANSFORM(TABLE[data])\nsys.stdout.write(out)\n{finish}")
    if main_guard:
        body = "def main():\n" + "".join(f"    {line}\n" for line in body.splitlines()) + (
            "\nif __name__ == '__main__':\n    main()\n")
    return f"import sys\nTABLE = {table!r}\nTRANSFORM = {transform}\n{body}"


def functional_oracle(record: dict, transform: str = "lambda v: v") -> str:
    func_name = json.loads(record["metadata"])["func_name"]
    table = {t["input"]: t["output"] for t in tests_of(record)}
    return (
        "import json\n"
        f"TABLE = {table!r}\n"
        f"TRANSFORM = {transform}\n"
        "class Solution:\n"
        f"    def {func_name}(self, *args):\n"
        "        key = '\\n'.join(json.dumps(a) for a in args)\n"
        "        for raw, out in TABLE.items():\n"
        "            if [json.loads(l) for l in raw.split('\\n')] == list(args):\n"
        "                return TRANSFORM(json.loads(out))\n"
        "        raise KeyError(key)\n"
    )
