"""The demo teacher: OCR2 schema, exact wrong fraction labelled by execution, deliberate format defects."""

import random
from collections import Counter

import pytest

from valley_assets.demo.problems import FAMILIES, make_demo_problems, reference_solution
from valley_assets.demo.runner import run_solutions
from valley_assets.demo.teacher import demo_teacher_traces, mutation_candidates, trace_summary
from valley_assets.science.text import THINK_CLOSE, extract_code, has_closed_think

TACO = {"EASY", "MEDIUM", "MEDIUM_HARD", "HARD", "VERY_HARD", "UNKNOWN_DIFFICULTY"}
N = 3 * len(FAMILIES)
WRONG, DEFECT = 0.3, 0.1


@pytest.fixture(scope="module")
def problems():
    return make_demo_problems(3, N, 0)[0]


@pytest.fixture(scope="module")
def traces(problems):
    return demo_teacher_traces(problems, seed=11, wrong_fraction=WRONG, defect_fraction=DEFECT)


def test_schema(problems, traces):
    assert len(traces) == len(problems)
    for i, (p, t) in enumerate(zip(problems, traces, strict=False)):
        for field in ("id", "question_id", "question", "r1_generation", "solution", "judgement", "dataset", "split",
                      "difficulty"):
            assert isinstance(t[field], str), field
        assert isinstance(t["pass_rate"], float) and isinstance(t["index"], int)
        assert t["question_id"] == p["question_id"] and t["question"] == p["question_content"]
        assert t["index"] == i and t["dataset"] == "valley-demo" and t["split"] == "train"
        assert t["judgement"] in ("right", "wrong") and t["difficulty"] in TACO
        assert t["pass_rate"] == (1.0 if t["judgement"] == "right" else 0.0)
    assert len({t["id"] for t in traces}) == len(traces)


def test_difficulty_mapping(problems, traces):
    coarse = {"EASY": "easy", "MEDIUM": "medium", "MEDIUM_HARD": "medium", "HARD": "hard", "VERY_HARD": "hard"}
    for p, t in zip(problems, traces, strict=False):
        assert coarse[t["difficulty"]] == p["difficulty"]
    assert {"MEDIUM_HARD", "VERY_HARD", "EASY", "HARD"} <= {t["difficulty"] for t in traces}


def test_exact_wrong_fraction(traces):
    assert Counter(t["judgement"] for t in traces)["wrong"] == round(WRONG * N)


def test_labels_hold_when_solutions_are_run_again(problems, traces):
    verdicts = run_solutions([(t["solution"], p) for p, t in zip(problems, traces, strict=False)], per_test_timeout_s=0.5)
    assert [v.passed for v in verdicts] == [t["judgement"] == "right" for t in traces]
    for p, t in zip(problems, traces, strict=False):
        if t["judgement"] == "right":
            assert t["solution"] == reference_solution(p)
        else:
            assert t["solution"] != reference_solution(p)


def test_well_formed_traces_extract_to_their_solution(traces):
    intact = [t for t in traces if has_closed_think(t["r1_generation"]) and extract_code(t["r1_generation"])]
    assert len(intact) == N - round(DEFECT * N)
    for t in intact:
        assert t["r1_generation"].startswith("<think>\n")
        assert extract_code(t["r1_generation"]) == t["solution"]


def test_defects(traces):
    unclosed = [t for t in traces if not has_closed_think(t["r1_generation"])]
    no_code = [t for t in traces if has_closed_think(t["r1_generation"]) and extract_code(t["r1_generation"]) is None]
    n_defects = round(DEFECT * N)
    assert len(unclosed) + len(no_code) == n_defects
    assert len(unclosed) >= 1 and len(no_code) >= 1
    for t in unclosed:
        assert t["r1_generation"].startswith("<think>") and THINK_CLOSE not in t["r1_generation"]
    summary = trace_summary(traces)
    assert summary["n_unclosed_think"] == len(unclosed) and summary["n_no_code"] == n_defects
    assert summary["n_wrong"] == round(WRONG * N)


def test_reasoning_varies_in_length(traces):
    lengths = [len(t["r1_generation"]) for t in traces]
    assert max(lengths) > 1.5 * min(lengths)


def test_deterministic_for_a_seed(problems, traces):
    subset = problems[:30]
    again = demo_teacher_traces(subset, seed=11, wrong_fraction=0.5, defect_fraction=0.1)
    assert demo_teacher_traces(subset, seed=11, wrong_fraction=0.5, defect_fraction=0.1) == again
    other = demo_teacher_traces(subset, seed=12, wrong_fraction=0.5, defect_fraction=0.1)
    assert [t["judgement"] for t in other] != [t["judgement"] for t in again]


def test_extreme_fractions(problems):
    subset = problems[:8]
    assert {t["judgement"] for t in demo_teacher_traces(subset, 0, 0.0, 0.0)} == {"right"}
    assert {t["judgement"] for t in demo_teacher_traces(subset, 0, 1.0, 0.0)} == {"wrong"}
    assert demo_teacher_traces([], 0, 0.3) == []


def test_mutation_candidates_are_distinct_single_changes():
    code = "n = int(input())\nprint(max(n, 3) + 1)"
    cands = mutation_candidates(code, random.Random(0))
    assert len(cands) == len(set(cands)) >= 4 and code not in cands
    assert "n = int(input())\nprint(min(n, 3) + 1)" in cands
    assert "n = int(input())\nprint(max(n, 3) - 1)" in cands


def test_bad_input_is_named(problems):
    with pytest.raises(ValueError, match="wrong_fraction"):
        demo_teacher_traces(problems[:2], 0, 1.5)
    with pytest.raises(ValueError, match="defect_fraction"):
        demo_teacher_traces(problems[:2], 0, 0.1, defect_fraction=-0.1)
    with pytest.raises(ValueError, match="row 1: field 'question_content'"):
        demo_teacher_traces([problems[0], {"question_id": "x"}], 0, 0.1)
    with pytest.raises(ValueError, match="not a demo problem id"):
        demo_teacher_traces([dict(problems[0], question_id="abc301_a")], 0, 0.1)


def test_a_row_without_a_failing_mutation_is_replaced_by_another():
    """A 1 x 1 grid whose rows are summed: no single-site mutation of its solution fails its tests. A wrong row
    picked there moves to the next row in the seeded order, so the wrong count stays exact (it used to raise, which
    stopped any world with 32 or more grid problems)."""
    from valley_assets.demo.problems import _family_instances

    grid = _family_instances(0, "train", "grid", 32)[31][2]
    assert "1 <= R <= 1; 1 <= C <= 1" in grid["question_content"]
    other = _family_instances(0, "train", "summult", 1)[0][2]
    for problems in ([grid, other], [other, grid]):
        traces = demo_teacher_traces(problems, 0, wrong_fraction=0.5, defect_fraction=0.0)
        assert {t["question_id"]: t["judgement"] for t in traces} == {grid["question_id"]: "right",
                                                                      other["question_id"]: "wrong"}
    with pytest.raises(RuntimeError, match="only 0 of the 1 wrong rows"):
        demo_teacher_traces([grid], 0, wrong_fraction=1.0, defect_fraction=0.0)
