"""Benchmark workloads for the grader: programs shaped like a 7-8B model's LiveCodeBench generations.

We have real problems and tests (/work/shared/data) but no real solutions, so a "correct" program reads and parses
its input as a real solution does, then answers from a table keyed by an MD5 of the input (a few hundred bytes of
literals instead of the inputs themselves). Wrong, crashing and looping programs are the same program with one
fault, at the first test or a later one. Each sample draws its kind with these weights (seeded):

    AC 30%, WA on test 1 36%, WA on a later test 12%, RE on test 1 12%, RE on a later test 5%,
    syntax error (truncated generation) 3%, TLE (an infinite loop) 2%

which is roughly what a 7-8B student gets on LCB (pass@1 20-35%; most failures are wrong answers on the public
tests; a few percent time out). "later test" falls back to test 1 on one-test problems. STUDENT_7B_MIX is the
same with many generations that have no code at all (NOCODE: the extracted code is "").
"""

from __future__ import annotations

import hashlib
import json
import random

REALISTIC_MIX = {"AC": 30, "WA1": 36, "WA>1": 12, "RE1": 12, "RE>1": 5, "SYNTAX": 3, "TLE": 2}
# A distilled 7B student trained on a small SFT set: most generations run out of tokens inside the reasoning, so the
# answer has no code block (code_list gets "", see science.metrics) or one cut off mid-program; pass@1 ~10%.
STUDENT_7B_MIX = {"NOCODE": 45, "SYNTAX": 8, "AC": 10, "WA1": 20, "WA>1": 6, "RE1": 6, "RE>1": 3, "TLE": 2}

_STDIN_TEMPLATE = '''import sys
import hashlib
from collections import defaultdict, Counter


def parse(data):
    tokens = data.split()
    values = []
    for token in tokens:
        try:
            values.append(int(token))
        except ValueError:
            values.append(token)
    return tokens, values


ANSWERS = {answers}


def solve(data, case):
    tokens, values = parse(data)
    counts = Counter(type(v).__name__ for v in values)
    first = values[0] if values else 0
    key = hashlib.md5(data.encode()).hexdigest()
{fault}    return ANSWERS.get(key, str(first))


def main():
    data = sys.stdin.read()
    sys.stdout.write(solve(data, len(data)) + "\\n")


if __name__ == "__main__":
    main()
'''

_FUNCTIONAL_TEMPLATE = '''from typing import List
import hashlib
import json


ANSWERS = {answers}


class Solution:
    def {func_name}(self, *args) -> int:
        size = sum(len(a) if isinstance(a, (list, str)) else 1 for a in args)
        key = hashlib.md5(json.dumps(list(args)).encode()).hexdigest()
{fault}        return ANSWERS.get(key, size)
'''


def _stdin_key(test_input: str) -> str:
    return hashlib.md5(test_input.encode()).hexdigest()


def _functional_key(test_input: str) -> str:
    args = [json.loads(line) for line in test_input.split("\n")]
    return hashlib.md5(json.dumps(args).encode()).hexdigest()


def _wrong(value, functional: bool):
    """A plausible wrong answer: off by one, negated boolean, a changed word."""
    if functional:
        if isinstance(value, bool):
            return not value
        if isinstance(value, (int, float)):
            return value + 1
        if isinstance(value, list):
            return list(reversed(value)) + [0]
        return str(value) + "x"
    first, _, rest = value.strip().partition("\n")
    tokens = first.split()
    if tokens and tokens[0].lstrip("-").isdigit():
        tokens[0] = str(int(tokens[0]) + 1)
    elif tokens:
        tokens[0] = {"Yes": "No", "No": "Yes", "YES": "NO", "NO": "YES"}.get(tokens[0], tokens[0] + "x")
    else:
        tokens = ["0"]
    return " ".join(tokens) + ("\n" + rest if rest else "")


def program(record: dict, tests: list[dict], kind: str) -> str:
    """One generation of the given kind (a key of REALISTIC_MIX or STUDENT_7B_MIX) for this problem."""
    if kind == "NOCODE":
        return ""
    func_name = json.loads(record["metadata"]).get("func_name")
    functional = bool(func_name)
    later = len(tests) > 1 and kind.endswith(">1")
    first_bad = 1 if later else 0  # index of the first test the fault hits
    answers, safe = {}, set()
    for index, test in enumerate(tests):
        key = _functional_key(test["input"]) if functional else _stdin_key(test["input"])
        answer = json.loads(test["output"]) if functional else test["output"]
        if kind.startswith("WA") and index >= first_bad:
            answer = _wrong(answer, functional)
        answers[key] = answer
        if index < first_bad:
            safe.add(key)
    indent = " " * 8 if functional else " " * 4
    fault = ""
    if kind.startswith("RE"):
        # a real-looking crash, indexing past the parsed input, on every test but those before the first faulty one
        fault = (f"{indent}if key not in {sorted(safe)!r}:\n{indent}    return str(args[size + 1])\n" if functional
                 else f"{indent}if key not in {sorted(safe)!r}:\n{indent}    return str(values[len(tokens) + 1])\n")
    elif kind == "TLE":
        fault = f"{indent}lo, hi = 0, 10 ** 18\n{indent}while lo < hi:\n{indent}    mid = (lo + hi) // 2\n"
    if functional:
        code = _FUNCTIONAL_TEMPLATE.format(answers=repr(answers), func_name=func_name, fault=fault)
    else:
        code = _STDIN_TEMPLATE.format(answers=repr(answers), fault=fault)
    if kind == "SYNTAX":
        code = code[: len(code) * 2 // 3].rstrip() + "\n    return (\n"  # a generation cut off mid-expression
    return code


def realistic_generations(records: list[dict], tests_of, samples_per_problem: int, seed: int = 0,
                          mix: dict[str, int] | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """(programs, their kinds) per problem, kinds drawn from `mix` (default REALISTIC_MIX)."""
    mix = mix or REALISTIC_MIX
    rng = random.Random(seed)
    kinds_all = list(mix)
    weights = [mix[k] for k in kinds_all]
    programs, kinds = [], []
    for record in records:
        tests = tests_of(record)
        chosen = rng.choices(kinds_all, weights=weights, k=samples_per_problem)
        programs.append([program(record, tests, kind) for kind in chosen])
        kinds.append(chosen)
    return programs, kinds
