"""Per-sample diagnostics, as LiveCodeBench's metadata gives them (lcb_runner/evaluation/testing_util.py: grade_stdio
and grade_call_based return, with the first failure, error_code -2 wrong answer / -3 time limit / -4 runtime error,
the error, and the test's inputs, expected and produced output through truncatefn); in results.json, the samples
log and `valley grade --explain QUESTION_ID`."""

import json

from grading_helpers import make_problem

from valley_assets.grading import grade, samples_log_path
from valley_assets.grading.cli import main

SUM = make_problem("sum", [("1 2\n", "3\n"), ("10 -4\n", "6\n"), ("5 5\n", "10\n")])
LONG = "7" * 1000
LONG_PROBLEM = make_problem("long", [("", LONG)])
PAIR = make_problem("pair", [("[1, 2]\n3", "[4, 5]"), ("[0]\n1", "[1]")], fn_name="addAll")


def truncatefn(text: str, length: int = 300) -> str:
    """testing_util.truncatefn's rule: past `length` characters, the first and last length/2 around a marker."""
    return text if len(text) <= length else text[: length // 2] + "...(truncated) ..." + text[-length // 2:]


def test_failures_name_the_first_failing_test_and_why(tmp_path):
    results_path = tmp_path / "results.json"
    stdin_codes = {
        "wrong on test 1": "a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)",
        "extra line": "a, b = map(int, input().split())\nprint(a + b)\nprint(0)",
        "raises": "a, b = map(int, input().split())\nraise ValueError(f'boom {a}')",
        "syntax error": "print(1 +",
        "loops on test 0": "input()\nwhile True:\n    pass",
        "passes": "a, b = map(int, input().split())\nprint(a + b)",
    }
    out = grade([SUM, LONG_PROBLEM, PAIR], [
        {"question_id": "sum", "code_list": list(stdin_codes.values())},
        {"question_id": "long", "code_list": [f"print('{'8' * 1000}')"]},
        {"question_id": "pair", "code_list": ["class Solution:\n    def addAll(self, nums, k):\n"
                                              "        return [x - k for x in nums]"]},
    ], backend="process", workers=2, timeout_s=1.0, results_path=results_path)
    by_name = dict(zip(stdin_codes, out["results"]["sum"], strict=True))
    assert by_name["wrong on test 1"]["failure"] == {
        "test": 1, "error_code": -2, "error_type": None,
        "error_message": "Wrong answer at output_line_idx=0: 0 != 6",
        "inputs": "10 -4\n", "expected": "6\n", "output": "0\n"}
    assert by_name["extra line"]["failure"]["error_message"] == "Wrong answer: mismatched output length"
    assert by_name["extra line"]["failure"]["test"] == 0
    assert by_name["raises"]["failure"] == {
        "test": 0, "error_code": -4, "error_type": "ValueError", "error_message": "boom 1",
        "inputs": "1 2\n", "expected": "3\n", "output": None}
    syntax = by_name["syntax error"]["failure"]
    assert (syntax["test"], syntax["error_code"], syntax["error_type"]) == (None, -4, "SyntaxError")
    assert syntax["inputs"] is None and syntax["expected"] is None
    timed_out = by_name["loops on test 0"]["failure"]
    assert (by_name["loops on test 0"]["verdict"], timed_out["test"], timed_out["error_code"]) == ("TLE", 0, -3)
    assert by_name["passes"]["failure"] is None

    long_failure = out["results"]["long"][0]["failure"]
    assert long_failure["expected"] == truncatefn(LONG)
    assert long_failure["output"] == truncatefn("8" * 1000 + "\n")
    assert long_failure["error_message"] == (
        f"Wrong answer at output_line_idx=0: {truncatefn('8' * 1000)} != {truncatefn(LONG)}")

    # call-based: the decoded arguments and values, shown as the harness's truncatefn(str(...)) shows them
    assert out["results"]["pair"][0]["failure"] == {
        "test": 0, "error_code": -2, "error_type": None, "error_message": "Wrong Answer",
        "inputs": "[[1, 2], 3]", "expected": "[4, 5]", "output": "[-2, -1]"}

    # the same in results.json and in the samples log
    written = json.loads(results_path.read_text())
    assert written["results"]["sum"] == out["results"]["sum"]
    logged = [json.loads(line) for line in samples_log_path(results_path).read_text().splitlines()]
    logged_sum = sorted((e for e in logged if e["question_id"] == "sum"), key=lambda e: e["sample_idx"])
    assert [e["failure"] for e in logged_sum] == [r["failure"] for r in out["results"]["sum"]]


def test_explain_prints_each_samples_diagnostics(tmp_path, capsys):
    results_path = tmp_path / "results.json"
    grade([SUM], [{"question_id": "sum", "code_list": [
        "a, b = map(int, input().split())\nprint(a + b)",
        "a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)",
        "raise KeyError('missing')",
    ]}], backend="process", workers=1, results_path=results_path)
    assert main(["grade", "--explain", "sum", "--out", str(results_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"sum: 3 samples, 1 passed ({results_path})"
    assert lines[1].startswith("#0 AC  tests run 3, ")
    assert lines[2].startswith("#1 WA  tests run 2, ")
    assert lines[2].endswith("; test 1: Wrong answer at output_line_idx=0: 0 != 6")
    assert lines[3:6] == ["    inputs:   '10 -4\\n'", "    expected: '6\\n'", "    output:   '0\\n'"]
    assert lines[6].startswith("#2 RE  tests run 1, ")
    assert lines[6].endswith("; test 0: KeyError: 'missing'")
    # an unknown question is a clear error, exit status 2
    assert main(["grade", "--explain", "nope", "--out", str(results_path)]) == 2
    assert "question_id 'nope' is not in" in capsys.readouterr().err
