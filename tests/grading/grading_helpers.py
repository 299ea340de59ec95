"""Helpers shared by the grading tests (imported by file name; the tests folder is not a package)."""

import json

from valley_assets.grading import grade


def make_problem(qid: str, tests: list[tuple[str, str]], fn_name: str | None = None, difficulty: str = "easy") -> dict:
    testtype = "functional" if fn_name else "stdin"
    cases = [{"input": i, "output": o, "testtype": testtype} for i, o in tests]
    return {"question_id": qid, "difficulty": difficulty, "public_test_cases": json.dumps(cases[:1]),
            "private_test_cases": json.dumps(cases[1:]),
            "metadata": json.dumps({"func_name": fn_name} if fn_name else {})}


def grade_programs(problem: dict, codes: list[str], backend: str = "process", **kw) -> list[dict]:
    out = grade([problem], [{"question_id": problem["question_id"], "code_list": codes}], backend=backend,
                workers=kw.pop("workers", 2), **kw)
    return out["results"][problem["question_id"]]
