"""The harness's pure rules: program rewriting, output comparison, record decoding and validation."""

import base64
import json
import pickle
import zlib

import pytest
from grading_helpers import make_problem

from valley_assets.grading import ProblemFormatError, decode_private_tests, load_problems_jsonl, problem_from_record
from valley_assets.grading.grader import summarize
from valley_assets.grading.runner import stdin_output_matches, strip_main_guard, wrap_stdin_program


@pytest.mark.parametrize("actual, expected, ok", [
    ("1 2\n3\n", "1 2\n3", True),            # trailing newline stripped
    ("  1 2  \n 3\n\n\n", "1 2\n3", True),   # per-line and whole-text strip
    ("1.0 2.00\n3e0", "1 2\n3", True),       # token-wise Decimal equality
    ("-0", "0", True),
    ("0.30000000000000004", "0.3", False),   # no float tolerance
    ("1  2", "1 2", True),                   # split() on whitespace runs, as Decimals
    ("a  b", "a b", False),                  # non-numeric lines must match exactly
    ("YES", "Yes", False),                   # no case folding
    ("1\n\n2", "1\n2", False),               # inner empty line changes the line count
    ("1 2 3", "1\n2\n3", False),             # line count must match
    ("nan", "nan", True),                    # exact string match comes first
    ("NaN ", "nan", False),                  # Decimal NaN != NaN
    ("", "", True),
    ("1_000", "1000", True),                 # Decimal accepts underscores (PEP 515)
])
def test_stdin_comparison(actual, expected, ok):
    assert stdin_output_matches(actual, expected) is ok


def test_main_guard_only_last_statement_and_exact_form():
    code = "def main():\n    print(1)\nif __name__ == \"__main__\":\n    main()\n"
    assert "__name__" not in strip_main_guard(code)
    reversed_guard = "def main():\n    print(1)\nif '__main__' == __name__:\n    main()\n"
    assert strip_main_guard(reversed_guard) == reversed_guard
    not_last = "if __name__ == '__main__':\n    x = 1\nprint(x)\n"
    assert strip_main_guard(not_last) == not_last
    assert strip_main_guard("def (") == "def ("
    assert strip_main_guard("") == ""


def test_wrap_hoists_imports_and_wraps_the_rest():
    wrapped = wrap_stdin_program("import sys\nfrom math import gcd\nx = 1\nprint(x)\n")
    tail = wrapped.split("sys.setrecursionlimit(50000)\n", 1)[1]
    assert tail.strip().startswith("import sys\nfrom math import gcd")
    assert "def wrapped_function():\n    x = 1\n    print(x)" in tail
    assert wrap_stdin_program("def (") == "def ("


def test_decode_private_tests_both_formats():
    tests = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]
    assert decode_private_tests(json.dumps(tests)) == tests
    packed = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()
    assert decode_private_tests(packed) == tests
    with pytest.raises(ProblemFormatError, match="neither JSON nor"):
        decode_private_tests("!!not base64!!")
    with pytest.raises(ProblemFormatError, match="must be a string"):
        decode_private_tests(5)


def test_problem_record_validation_names_row_and_field():
    good = make_problem("q1", [("1", "2"), ("3", "4")])
    problem = problem_from_record(good)
    assert problem.inputs == ("1", "3") and problem.fn_name is None
    with pytest.raises(ProblemFormatError, match="'q1'.*'metadata'"):
        problem_from_record(dict(good, metadata="{bad"))
    with pytest.raises(ProblemFormatError, match="'q1'.*private_test_cases"):
        problem_from_record(dict(good, private_test_cases="%%%"))
    with pytest.raises(ProblemFormatError, match="'q1'.*difficulty"):
        problem_from_record({k: v for k, v in good.items() if k != "difficulty"})
    with pytest.raises(ProblemFormatError, match="question_id"):
        problem_from_record({k: v for k, v in good.items() if k != "question_id"})
    bad_functional = make_problem("q2", [("[1]\nnot json", "1")], fn_name="f")
    with pytest.raises(ProblemFormatError, match="'q2'.*functional test 0"):
        problem_from_record(bad_functional)
    with pytest.raises(ProblemFormatError, match="'q3'.*public_test_cases\\[0\\]"):
        problem_from_record(dict(make_problem("q3", [("1", "2")]), public_test_cases='[{"input": 1}]'))


def test_load_problems_jsonl_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(make_problem("q1", [("1", "1")])) + "\n\n{oops\n")
    with pytest.raises(ProblemFormatError, match=r"p\.jsonl:3"):
        load_problems_jsonl(path)


def test_summary_uses_unbiased_pass_at_1_per_difficulty():
    results = {"a": [{"passed": True, "verdict": "AC"}, {"passed": False, "verdict": "WA"}],
               "b": [{"passed": False, "verdict": "TLE"}] * 2,
               "c": [{"passed": True, "verdict": "AC"}]}
    summary = summarize(results, {"a": "easy", "b": "hard", "c": "easy"})
    assert summary["pass@1"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert summary["per_difficulty"] == {"easy": pytest.approx(0.75), "hard": 0.0}
    assert summary["n_samples"] == 5 and summary["n_problems"] == 3
    assert summary["verdicts"]["TLE"] == 2


def test_tests_cache_keeps_the_last_problems_and_asks_for_what_it_lacks():
    from valley_assets.grading.runner import TestsCache

    cache = TestsCache(entries=2)
    assert cache.fill({"id": "a", "inputs": ["1"], "outputs": ["1"]})  # no key: passes through untouched
    for key in ("p1", "p2", "p3"):
        assert cache.fill({"id": key, "tests_key": key, "inputs": [key], "outputs": [key + "!"]})
    slim = {"id": "x", "tests_key": "p3"}
    assert cache.fill(slim) and slim["inputs"] == ["p3"] and slim["outputs"] == ["p3!"]
    assert cache.fill({"id": "y", "tests_key": "p2"})
    assert not cache.fill({"id": "z", "tests_key": "p1"})  # evicted: the grader must resend the tests


def test_default_workers_oversubscribe_the_cores_within_memory(monkeypatch):
    from valley_assets.grading import grader

    monkeypatch.setattr(grader.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    page, gib = 4096, 1024 ** 3
    monkeypatch.setattr(grader.os, "sysconf", lambda name: page if name == "SC_PAGE_SIZE" else 64 * gib // page)
    assert grader.default_workers(1024) == grader.WORKERS_PER_CORE * 4  # 8 sandboxes x 1.25 GiB fit in 64 GiB
    monkeypatch.setattr(grader.os, "sysconf", lambda name: page if name == "SC_PAGE_SIZE" else 4 * gib // page)
    assert grader.default_workers(1024) == 3  # 4 GiB holds three sandboxes at 1024 + 256 MB each
    assert grader.default_workers(64 * 1024) == 1
