"""The demo problem generator: schema, determinism, held-out evaluation, and reference solutions that really pass."""

import json
import re
from collections import Counter
from datetime import datetime

import pytest

from valley_assets.demo.problems import (
    FAMILIES,
    FAMILY_BY_NAME,
    PLATFORM,
    _params_key,
    demo_instance,
    make_demo_problems,
    parse_question_id,
    reference_solution,
    side_of,
    taco_difficulty,
)
from valley_assets.demo.runner import run_solutions

STRING_FIELDS = ("question_id", "question_title", "question_content", "platform", "contest_date", "starter_code",
                 "difficulty", "public_test_cases", "private_test_cases", "metadata")
N_TRAIN, N_EVAL = 3 * len(FAMILIES), 2 * len(FAMILIES)


@pytest.fixture(scope="module")
def world():
    return make_demo_problems(7, N_TRAIN, N_EVAL)


def test_sizes_and_family_balance(world):
    train, evaluation = world
    assert (len(train), len(evaluation)) == (N_TRAIN, N_EVAL)
    assert 15 <= len(FAMILIES) <= 25
    per_family = Counter(parse_question_id(p["question_id"])[2] for p in train)
    assert set(per_family) == set(FAMILY_BY_NAME) and set(per_family.values()) == {3}


def test_schema(world):
    for p in world[0] + world[1]:
        assert set(STRING_FIELDS) <= set(p)
        for field in STRING_FIELDS:
            assert isinstance(p[field], str), (p["question_id"], field)
        assert p["platform"] == PLATFORM
        assert p["difficulty"] in ("easy", "medium", "hard")
        datetime.fromisoformat(p["contest_date"])
        public, private = json.loads(p["public_test_cases"]), json.loads(p["private_test_cases"])
        assert len(public) >= 1 and len(private) >= 1
        func_name = json.loads(p["metadata"]).get("func_name")
        for t in public + private:
            assert set(t) == {"input", "output", "testtype"} and all(isinstance(v, str) for v in t.values())
            assert t["testtype"] == ("functional" if func_name else "stdin")
        if func_name:
            assert p["starter_code"].startswith("class Solution:\n    def ") and f"def {func_name}(self" in p[
                "starter_code"]
            assert json.loads(p["metadata"]) == {"func_name": func_name}
        else:
            assert p["starter_code"] == "" and p["metadata"] == "{}"


def test_both_kinds_and_all_difficulties(world):
    train, evaluation = world
    for problems in (train, evaluation):
        assert {p["difficulty"] for p in problems} == {"easy", "medium", "hard"}
        assert any(p["starter_code"] for p in problems) and any(not p["starter_code"] for p in problems)
    assert {taco_difficulty(p) for p in train} >= {"EASY", "MEDIUM", "MEDIUM_HARD", "HARD", "VERY_HARD"}


def test_deterministic_and_prefix_stable(world):
    assert make_demo_problems(7, N_TRAIN, N_EVAL) == world
    small_train, small_eval = make_demo_problems(7, 10, 3)
    assert small_train == world[0][:10] and small_eval == world[1][:3]
    other_train, _ = make_demo_problems(8, N_TRAIN, 0)
    assert [p["question_content"] for p in other_train] != [p["question_content"] for p in world[0]]


def test_ids_unique_and_parseable(world):
    ids = [p["question_id"] for p in world[0] + world[1]]
    assert len(set(ids)) == len(ids)
    for qid in ids:
        seed, side, family, _k = parse_question_id(qid)
        assert seed == 7 and family in FAMILY_BY_NAME
        assert side == ("train" if "-t-" in qid else "eval")


def test_eval_is_held_out(world):
    train, evaluation = world
    train_keys = {(parse_question_id(p["question_id"])[2], _params_key(demo_instance(p)[1])) for p in train}
    eval_keys = {(parse_question_id(p["question_id"])[2], _params_key(demo_instance(p)[1])) for p in evaluation}
    assert not train_keys & eval_keys
    assert len(train_keys) == len(train) and len(eval_keys) == len(evaluation)  # no repeats within a side either
    train_texts = {p["question_content"] for p in train}
    assert not any(p["question_content"] in train_texts for p in evaluation)
    for p in evaluation:
        family, params = demo_instance(p)
        assert side_of(7, family.name, params) == "eval"
    assert max(p["contest_date"] for p in train) < min(p["contest_date"] for p in evaluation)


def test_reference_solutions_pass_every_test(world):
    problems = world[0] + world[1]
    verdicts = run_solutions([(reference_solution(p), p) for p in problems])
    failed = [(p["question_id"], v.verdict) for p, v in zip(problems, verdicts, strict=False) if not v.passed]
    assert not failed
    assert all(v.tests_run == len(json.loads(p["public_test_cases"])) + len(json.loads(p["private_test_cases"]))
               for p, v in zip(problems, verdicts, strict=False))


def test_runner_rejects_wrong_output_errors_and_timeouts(world):
    stdin_problem = next(p for p in world[0] if not p["starter_code"])
    functional_problem = next(p for p in world[0] if p["starter_code"])
    verdicts = run_solutions([
        ("print('definitely not the answer')", stdin_problem),
        ("raise ValueError('boom')", stdin_problem),
        ("while True:\n    pass", stdin_problem),
        ("class Solution:\n    pass", functional_problem),
    ], per_test_timeout_s=0.3)
    assert [v.passed for v in verdicts] == [False] * 4
    assert verdicts[0].verdict == "wrong answer"
    assert verdicts[1].verdict == "runtime error: ValueError"
    assert verdicts[2].verdict == "time limit exceeded"
    assert verdicts[3].verdict.startswith("runtime error")


def test_statements_carry_their_parameters(world):
    """Parameters that change the code must be readable in the statement (or a student could not solve it)."""
    for p in world[0]:
        family, params = demo_instance(p)
        if family.name == "summult":
            assert f"{params['k']}" in p["question_content"]
        if family.name == "fizz":
            assert params["w1"] in p["question_content"] and params["w2"] in p["question_content"]
        if family.name in ("coins", "stairs"):
            assert str(params["mod"]) in p["question_content"]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="seed"):
        make_demo_problems(-1, 5, 5)
    with pytest.raises(ValueError, match="n_train"):
        make_demo_problems(0, -3, 5)
    with pytest.raises(ValueError, match="not a demo problem id"):
        parse_question_id("abc301_a")
    train, _ = make_demo_problems(0, 1, 0)
    tampered = dict(train[0], question_content=train[0]["question_content"] + " (edited)")
    with pytest.raises(ValueError, match=re.escape(train[0]["question_id"])):
        reference_solution(tampered)
    with pytest.raises(ValueError, match="ran out of distinct"):
        make_demo_problems(0, 400 * len(FAMILIES), 0)
