"""The demo's programming problems: seeded instances of ~20 small problem families, in LiveCodeBench's record schema.

The families live in `family` (what a family is) and `families_numbers`, `families_text`, `families_arrays` and
`families_dp` (the families themselves, by kind); this module orders them (`FAMILIES`) and builds the world from them.

Held-out evaluation: every parameter tuple is assigned to the train or the eval side by a seeded hash, so eval
problems are instances of the same families (a tiny student has something to learn) with parameters never seen in
training (no eval statement appears in training). Problem `k` of a family on a side depends only on (seed, side,
family, k), so growing `n_train` or `n_eval` only appends problems, and a problem can be regenerated from its
`question_id` (`demo<seed>-<t|e>-<family>-<k>`): that is how the teacher finds the solution it writes.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
from datetime import date, timedelta
from functools import lru_cache

from valley_assets.data.schema import TACO_TO_LCB_DIFFICULTY
from valley_assets.demo.families_arrays import GridSums, KthDistinct, MaxSubarray, MinMax, PairCount, RangeSums
from valley_assets.demo.families_dp import CoinWays, Knapsack, LongestIncreasing, Stairs
from valley_assets.demo.families_numbers import DigitSumBase, FizzVariant, GcdPairs, PowerSum, PrimeRange, SumMultiples
from valley_assets.demo.families_text import Brackets, CountLetters, Palindromes, ReverseWords, RunLength, SortByKey
from valley_assets.demo.family import Family

PLATFORM = "valley-demo"
SIDES = ("train", "eval")
EVAL_SHARE = 4  # one parameter tuple in EVAL_SHARE belongs to the eval side
N_PUBLIC_TESTS = 1  # the statement shows one sample (the shortest test): every token costs the tiny student compute
N_PRIVATE_TESTS = 7
_TRAIN_DATES = (date(2023, 1, 1), 540)  # (first day, span in days): training problems predate the eval window
_EVAL_DATES = (date(2024, 8, 1), 180)
_QUESTION_ID_RE = re.compile(r"^demo(\d+)-([te])-([a-z]+)-(\d+)$")


def normalise_code(source: str) -> str:
    """One canonical layout (ast.unparse, no blank lines) so that correct and mutated solutions look alike to a student."""
    return "\n".join(line for line in ast.unparse(ast.parse(source)).splitlines() if line.strip())


# The order is part of the world: `_family_order` shuffles this tuple with a seeded RNG.
FAMILIES: tuple[Family, ...] = (
    SumMultiples(), ReverseWords(), CountLetters(), FizzVariant(), Palindromes(), MinMax(), PowerSum(),
    MaxSubarray(), GcdPairs(), SortByKey(), RangeSums(), PairCount(), DigitSumBase(), RunLength(), KthDistinct(),
    GridSums(), LongestIncreasing(), CoinWays(), PrimeRange(), Brackets(), Knapsack(), Stairs(),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}


# --------------------------------------------------------------------------------------------------------------------
# Instances: parameters, side assignment, tests, records.
# --------------------------------------------------------------------------------------------------------------------


def _params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def side_of(seed: int, family: str, params: dict) -> str:
    """Which side a parameter tuple belongs to: a seeded hash, so train and eval never share parameters."""
    digest = hashlib.sha256(f"{seed}|{family}|{_params_key(params)}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") % EVAL_SHARE == 0 else "train"


def _family_order(seed: int) -> list[Family]:
    order = list(FAMILIES)
    random.Random(f"valley-demo-order|{seed}").shuffle(order)
    return order


def _render_case(family: Family, p: dict, case) -> dict:
    if family.functional:
        return {"input": "\n".join(json.dumps(arg) for arg in case), "output": json.dumps(family.expected(p, case)),
                "testtype": "functional"}
    return {"input": family.render(p, case), "output": family.expected(p, case) + "\n", "testtype": "stdin"}


def _functional_example(family: Family, test: dict) -> str:
    args = test["input"].split("\n")
    shown = ", ".join(f"{name} = {arg}" for name, arg in zip(family.arg_names, args, strict=False))
    return f"Example: Input: {shown} Output: {test['output']}"


def _statement(family: Family, p: dict, body: str, public: list[dict]) -> str:
    """A compact LiveCodeBench-like statement: the body (which names every parameter the code needs), the input and
    output format, the constraints on one line (they name the remaining parameters, so no two parameter tuples share
    a statement) and the samples. Compact because the tiny student pays for every prompt token in training and
    generation (issue I: the LCB layout with headings and two samples cost 90-220 tokens a statement)."""
    constraints = "Constraints: " + "; ".join(family.constraints(p))
    if family.functional:
        examples = "\n".join(_functional_example(family, t) for t in public)
        return f"{body}\n\n{examples}\n{constraints}"
    samples = "\n".join(f"Sample Input:\n{t['input'].rstrip()}\nSample Output:\n{t['output'].rstrip()}" for t in public)
    return f"{body}\n\nInput: {family.input_spec(p)}\nOutput: {family.output_spec(p)}\n{constraints}\n\n{samples}"


def _starter_code(family: Family) -> str:
    if not family.functional:
        return ""
    return f"class Solution:\n    def {family.func_name}(self, {family.signature}) -> {family.returns}:\n        "


@lru_cache(maxsize=256)
def _family_instances(seed: int, side: str, family_name: str, count: int) -> tuple[tuple[str, dict, dict], ...]:
    """The first `count` instances of one family on one side: (question_id, params, record). Instance k depends only
    on (seed, side, family, k) and the parameters of instances 0..k-1 (never reused), so prefixes are stable."""
    family = FAMILY_BY_NAME[family_name]
    used: set[str] = set()
    out = []
    for k in range(count):
        rng = random.Random(f"valley-demo|{seed}|{side}|{family_name}|{k}")
        for _attempt in range(2000):
            params = family.params(rng)
            key = _params_key(params)
            if key not in used and side_of(seed, family_name, params) == side:
                break
        else:
            raise ValueError(f"family {family_name!r} ran out of distinct {side} parameters at instance {k}: "
                             f"ask for fewer problems")
        used.add(key)
        tests = []
        seen_inputs: set[str] = set()
        for _attempt in range(200):  # distinct test inputs where the input space allows it
            test = _render_case(family, params, family.case(params, rng))
            if test["input"] not in seen_inputs:
                seen_inputs.add(test["input"])
                tests.append(test)
            if len(tests) == N_PUBLIC_TESTS + N_PRIVATE_TESTS:
                break
        while len(tests) < N_PUBLIC_TESTS + N_PRIVATE_TESTS:
            tests.append(_render_case(family, params, family.case(params, rng)))
        # The shortest tests are shown as samples (fewer tokens in the statement); the rest stay private.
        shown = sorted(range(len(tests)), key=lambda i: (len(tests[i]["input"]) + len(tests[i]["output"]), i))
        shown = set(shown[:N_PUBLIC_TESTS])
        public = [t for i, t in enumerate(tests) if i in shown]
        private = [t for i, t in enumerate(tests) if i not in shown]
        body = rng.choice(family.wordings(params))
        first_day, span = _TRAIN_DATES if side == "train" else _EVAL_DATES
        question_id = f"demo{seed}-{side[0]}-{family_name}-{k:03d}"
        record = {
            "question_id": question_id,
            "question_title": rng.choice(family.titles(params)),
            "question_content": _statement(family, params, body, public),
            "platform": PLATFORM,
            "contest_date": (first_day + timedelta(days=rng.randrange(span))).isoformat() + "T00:00:00",
            "starter_code": _starter_code(family),
            "difficulty": TACO_TO_LCB_DIFFICULTY[family.taco(params)],
            "public_test_cases": json.dumps(public),
            "private_test_cases": json.dumps(private),
            "metadata": json.dumps({"func_name": family.func_name} if family.functional else {}),
        }
        out.append((question_id, params, record))
    return tuple(out)


def _side_problems(seed: int, side: str, n: int) -> list[dict]:
    order = _family_order(seed)
    per_family = [n // len(order) + (1 if i < n % len(order) else 0) for i in range(len(order))]
    instances = {f.name: _family_instances(seed, side, f.name, c) for f, c in zip(order, per_family, strict=False)}
    # Round-robin over families, so any prefix of the list is balanced across families.
    return [dict(instances[order[i % len(order)].name][i // len(order)][2]) for i in range(n)]


def make_demo_problems(seed: int, n_train: int, n_eval: int) -> tuple[list[dict], list[dict]]:
    """(training problems, evaluation problems) as LiveCodeBench `code_generation_lite` records.

    Deterministic for a seed; the first n problems are the same whatever n is. Eval problems are held out: other
    question ids, parameters never used in training, later contest dates.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    for name, n in (("n_train", n_train), ("n_eval", n_eval)):
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"{name} must be a non-negative int, got {n!r}")
    return _side_problems(seed, "train", n_train), _side_problems(seed, "eval", n_eval)


def parse_question_id(question_id: str) -> tuple[int, str, str, int]:
    """`demo<seed>-<t|e>-<family>-<k>` -> (seed, side, family name, k)."""
    match = _QUESTION_ID_RE.match(question_id or "")
    if not match or match.group(3) not in FAMILY_BY_NAME:
        raise ValueError(f"question_id {question_id!r} is not a demo problem id (demo<seed>-<t|e>-<family>-<k>)")
    seed, side_letter, family, k = match.groups()
    return int(seed), {"t": "train", "e": "eval"}[side_letter], family, int(k)


def demo_instance(problem: dict) -> tuple[Family, dict]:
    """The family and parameters behind a demo problem record, regenerated from its question_id and checked
    against the record's text (a record edited after generation is refused, not silently mis-solved)."""
    qid = problem.get("question_id")
    seed, side, family_name, k = parse_question_id(qid)
    _, params, record = _family_instances(seed, side, family_name, k + 1)[k]
    if record["question_content"] != problem.get("question_content"):
        raise ValueError(f"problem {qid!r}: question_content differs from the generated demo problem")
    return FAMILY_BY_NAME[family_name], params


def reference_solution(problem: dict) -> str:
    """The correct solution source for a demo problem (what the demo teacher writes when it is right)."""
    family, params = demo_instance(problem)
    return normalise_code(family.code(params))


def reference_solutions(problems: list[dict]) -> list[str]:
    """`reference_solution` of many problems at once: one generation pass per (seed, side, family), not per problem."""
    wanted: dict[tuple[int, str, str], int] = {}
    for problem in problems:
        seed, side, family_name, k = parse_question_id(problem.get("question_id"))
        wanted[(seed, side, family_name)] = max(wanted.get((seed, side, family_name), 0), k + 1)
    instances = {key: _family_instances(*key, count) for key, count in wanted.items()}
    out = []
    for problem in problems:
        seed, side, family_name, k = parse_question_id(problem["question_id"])
        _, params, record = instances[(seed, side, family_name)][k]
        if record["question_content"] != problem.get("question_content"):
            raise ValueError(f"problem {problem['question_id']!r}: question_content differs from the generated demo "
                             "problem")
        out.append(normalise_code(FAMILY_BY_NAME[family_name].code(params)))
    return out


def taco_difficulty(problem: dict) -> str:
    """The TACO-style label (EASY … VERY_HARD) of a demo problem; LCB `difficulty` is its coarse version."""
    family, params = demo_instance(problem)
    return family.taco(params)
