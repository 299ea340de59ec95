"""TACO's tests become LiveCodeBench stdin tests, so production teachers' traces on TACO problems can be labelled
by the grader (TacoProblemSource, through the same loader as everything else)."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from valley_assets.data.taco import taco_stdin_tests
from valley_assets.grading import grade
from valley_assets.resources import TacoProblemSource


def test_stdin_tests_lines_and_call_based():
    spec = {"inputs": ["1 2\n", ["3 4", "5"]], "outputs": ["3\n", ["7", "5"]]}
    assert taco_stdin_tests(json.dumps(spec), where="p") == [
        {"input": "1 2\n", "output": "3\n", "testtype": "stdin"},
        {"input": "3 4\n5", "output": "7\n5", "testtype": "stdin"}]
    assert taco_stdin_tests(json.dumps({"fn_name": "add", "inputs": [[1, 2]], "outputs": [[3]]}), where="p") == []
    assert taco_stdin_tests("", where="p") == [] and taco_stdin_tests(None, where="p") == []


@pytest.mark.parametrize("raw, message", [
    ("{not json", "row 7: input_output is not JSON"),
    ("[1, 2]", "row 7: input_output must be a JSON object"),
    ('{"inputs": ["1"], "outputs": []}', "row 7: input_output needs lists 'inputs' and 'outputs' of one length"),
    ('{"inputs": [1], "outputs": ["1"]}', r"row 7: input_output inputs\[0\] must be a string"),
])
def test_bad_tests_name_the_row(raw, message):
    with pytest.raises(ValueError, match=message):
        taco_stdin_tests(raw, where="TACO train row 7")


def test_taco_problem_source_gives_gradable_records(tmp_path):
    rows = [
        {"question": "Print the sum of two integers.", "difficulty": "EASY", "source": "codechef", "starter_code": "",
         "input_output": json.dumps({"inputs": ["1 2\n", "10 -3\n"], "outputs": ["3\n", "7\n"]}), "solutions": "[]"},
        {"question": "Write add(a, b).", "difficulty": "VERY_HARD", "source": "codewars", "starter_code": "def add(a, b):",
         "input_output": json.dumps({"fn_name": "add", "inputs": [[1, 2]], "outputs": [[3]]}), "solutions": "[]"},
    ]
    (tmp_path / "TACO" / "ALL").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "TACO" / "ALL" / "train-00000-of-00001.parquet")
    problems = TacoProblemSource(source=str(tmp_path / "TACO")).training_problems()
    assert [p["question_id"] for p in problems] == ["taco-train-0", "taco-train-1"]
    assert [p["taco_difficulty"] for p in problems] == ["EASY", "VERY_HARD"]
    assert len(json.loads(problems[0]["public_test_cases"])) == 2 and problems[1]["public_test_cases"] == "[]"

    right = "a, b = map(int, input().split())\nprint(a + b)\n"
    wrong = "a, b = map(int, input().split())\nprint(a - b)\n"
    result = grade([problems[0]], [{"question_id": "taco-train-0", "code_list": [right, wrong]}], backend="process",
                   timeout_s=5.0, workers=1)
    assert [s["passed"] for s in result["results"]["taco-train-0"]] == [True, False]
