"""The demo's deterministic teacher: R1-style traces for the demo problems, in the OpenCodeReasoning-2 schema.

For each training problem it writes a `<think>…</think>` reasoning (a restatement, the approach for that problem
family, a varying number of checks) and then a short answer with a fenced python block.

Correctness is labelled by running, not by construction: every `solution` is executed against the problem's
public and private tests (`valley_assets.demo.runner`), `judgement` is `right` when all pass, and `pass_rate` is
1.0 or 0.0. Exactly `round(wrong_fraction * n)` rows, picked by the seed, carry a deliberately wrong solution: a
single-site mutation of the reference (an operator swap, an off-by-one constant, min for max, …) that was run and
seen to fail. A correct reference that fails its own tests is a generator bug and raises.

Format defects (`round(defect_fraction * n)` rows, picked by the seed, alternating kinds) break only `r1_generation`,
as in real distillation data where the solution was judged separately from the raw generation:
- `unclosed_think`: the generation stops mid-reasoning (a length cut), with no `</think>` and no answer;
- `no_code_block`: the answer shows the code indented, without a fenced block, so no code can be extracted.
Their `solution` and `judgement` are those of the code the teacher meant, so a filter on `judgement` alone lets them
through: the pool's format checks have to catch them.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import random

from valley_assets.demo.problems import demo_instance, normalise_code, reference_solution, taco_difficulty
from valley_assets.demo.runner import run_solutions

DATASET = "valley-demo"
DEFECT_KINDS = ("unclosed_think", "no_code_block")
_MUTATION_BATCH = 3  # candidate mutations tried per wrong row and round


# --------------------------------------------------------------------------------------------------------------------
# Wrong solutions: single-site AST mutations.
# --------------------------------------------------------------------------------------------------------------------

_BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv}
_CMP_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
              ast.NotEq: ast.Eq}
_NAME_SWAPS = {"max": "min", "min": "max", "reversed": "list", "sum": "max"}
_ATTR_SWAPS = {"upper": "lower", "lower": "upper", "gcd": "lcm"}


def _mutations_at(node: ast.AST) -> list[str]:
    """Names of the mutations that apply to one node."""
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINOP_SWAPS:
        return ["swap_op"]
    if isinstance(node, ast.Compare) and type(node.ops[0]) in _CMP_SWAPS:
        return ["swap_cmp"]
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return ["plus_one", "minus_one"]
    if isinstance(node, ast.Constant) and type(node.value) is bool:
        return ["negate"]
    if isinstance(node, ast.Name) and node.id in _NAME_SWAPS and isinstance(node.ctx, ast.Load):
        return ["swap_name"]
    if isinstance(node, ast.Constant) and type(node.value) is str and node.value:
        return ["empty_string"]
    if isinstance(node, ast.Attribute) and node.attr in _ATTR_SWAPS:
        return ["swap_attr"]
    if isinstance(node, ast.Slice) and node.step is not None:
        return ["drop_step"]
    return []


def _apply(node: ast.AST, mutation: str) -> None:
    if mutation == "swap_op":
        node.op = _BINOP_SWAPS[type(node.op)]()
    elif mutation == "swap_cmp":
        node.ops[0] = _CMP_SWAPS[type(node.ops[0])]()
    elif mutation == "plus_one":
        node.value += 1
    elif mutation == "minus_one":
        node.value -= 1
    elif mutation == "negate":
        node.value = not node.value
    elif mutation == "swap_name":
        node.id = _NAME_SWAPS[node.id]
    elif mutation == "empty_string":
        node.value = ""
    elif mutation == "swap_attr":
        node.attr = _ATTR_SWAPS[node.attr]
    elif mutation == "drop_step":
        node.step = None
    else:
        raise ValueError(f"unknown mutation {mutation!r}")


def mutation_candidates(code: str, rng: random.Random) -> list[str]:
    """Every distinct single-site mutation of `code`, in a seeded order (unparsed, same layout as the reference)."""
    tree = ast.parse(code)
    sites = [(i, m) for i, node in enumerate(ast.walk(tree)) for m in _mutations_at(node)]
    rng.shuffle(sites)
    seen, out = {normalise_code(code)}, []
    for index, mutation in sites:
        mutated = copy.deepcopy(tree)
        _apply(next(n for i, n in enumerate(ast.walk(mutated)) if i == index), mutation)
        source = normalise_code(ast.unparse(mutated))
        if source not in seen:
            seen.add(source)
            out.append(source)
    return out


def _failing_mutants(problems: list[dict], seed: int) -> list[str | None]:
    """One mutated solution per problem, each run against the problem's tests and seen to fail; None for a problem
    where no single-site mutation fails (a tiny instance whose tests cannot tell them apart)."""
    pending = {}
    for i, problem in enumerate(problems):
        row_rng = random.Random(f"valley-demo-teacher|{seed}|mutate|{problem['question_id']}")
        pending[i] = mutation_candidates(reference_solution(problem), row_rng)
    chosen: dict[int, str] = {}
    while pending:
        batch = [(i, code) for i, cands in pending.items() for code in cands[:_MUTATION_BATCH]]
        if not batch:
            break
        verdicts = run_solutions([(code, problems[i]) for i, code in batch], per_test_timeout_s=0.5)
        for (i, code), verdict in zip(batch, verdicts, strict=False):
            if i not in chosen and not verdict.passed:
                chosen[i] = code
        pending = {i: cands[_MUTATION_BATCH:] for i, cands in pending.items() if i not in chosen and cands}
    return [chosen.get(i) for i in range(len(problems))]


def _wrong_solutions(problems: list[dict], seed: int, n_wrong: int, rng: random.Random) -> dict[int, str]:
    """`n_wrong` rows (picked by the seeded `rng`) with a failing mutant each. A picked row none of whose mutants
    fails is replaced by the next row in the same seeded order, so the count is exact whenever enough rows have
    one; otherwise this raises, naming the rows."""
    order = rng.sample(range(len(problems)), len(problems))
    chosen: dict[int, str] = {}
    start = 0
    while len(chosen) < n_wrong:
        rows = order[start:start + n_wrong - len(chosen)]
        if not rows:
            raise RuntimeError(f"only {len(chosen)} of the {n_wrong} wrong rows asked for have a failing mutation")
        start += len(rows)
        for row, mutant in zip(rows, _failing_mutants([problems[r] for r in rows], seed), strict=True):
            if mutant is not None:
                chosen[row] = mutant
    return chosen


# --------------------------------------------------------------------------------------------------------------------
# Reasoning text.
# --------------------------------------------------------------------------------------------------------------------

_OPENINGS = ("Okay, let's see.", "Alright, let me read the problem carefully.", "Let me think about this problem.",
             "Hmm, so what is being asked here?", "Okay, I need to figure out the approach first.")
_CHECKS = ("Wait, let me double-check the edge cases.", "Let me make sure the loop bounds are right.",
           "Hmm, does this handle the smallest input? Yes, it should.", "Let me re-read the output format once more.",
           "Wait, is there any overflow issue? No, Python integers are unbounded.",
           "I should be careful with off-by-one errors here.")
_CLOSINGS = ("So the code should be straightforward.", "I think that's it. Let me write the code.",
             "That should work. Now the code.", "Okay, let me code this up.")
_ANSWER_INTROS = ("Here is the solution:", "The final code:", "Solution:", "This reads the input and prints the answer:")


def _first_sentence(problem: dict) -> str:
    body = problem["question_content"].split("\n\n")[0]
    return body.split(". ")[0].rstrip(".") + "."


def _reasoning(problem: dict, rng: random.Random) -> list[str]:
    """The think block: the task restated (with its parameters), the family's approach, 0-2 checks and a closing.
    Kept short (no walk through the sample): a trace longer than the tiny student can afford to learn and to
    sample teaches only its format (issue I)."""
    family, params = demo_instance(problem)
    lines = [rng.choice(_OPENINGS), f"The problem says: {_first_sentence(problem)}"]
    if family.functional:
        lines.append(f"I need to implement {family.func_name} in the Solution class and return the answer.")
    else:
        lines.append("The input comes from standard input, and I print the answer.")
    lines += family.hints(params)
    lines += rng.sample(_CHECKS, rng.randint(0, 2))  # varying length, as real traces vary
    if rng.random() < 0.5:
        lines.append(f"The constraints are small ({family.constraints(params)[0]}), so efficiency is not a concern.")
    lines.append(rng.choice(_CLOSINGS))
    return lines


def _generation(reasoning: list[str], code: str, rng: random.Random, defect: str | None) -> str:
    think = "\n".join(reasoning)
    if defect == "unclosed_think":
        cut = think.rfind(" ", 0, max(1, int(len(think) * rng.uniform(0.4, 0.8))))
        return f"<think>\n{think[:cut if cut > 0 else len(think) // 2]}"
    intro = rng.choice(_ANSWER_INTROS)
    if defect == "no_code_block":
        indented = "\n".join("    " + line for line in code.splitlines())
        return f"<think>\n{think}\n</think>\n\n{intro}\n\n{indented}\n"
    return f"<think>\n{think}\n</think>\n\n{intro}\n\n```python\n{code}\n```\n"


# --------------------------------------------------------------------------------------------------------------------
# Traces.
# --------------------------------------------------------------------------------------------------------------------


def _check_fraction(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def demo_teacher_traces(
    problems: list[dict], seed: int, wrong_fraction: float, defect_fraction: float = 0.02
) -> list[dict]:
    """One OCR2-schema trace per problem, in the problems' order; see the module docstring for the labels."""
    _check_fraction("wrong_fraction", wrong_fraction)
    _check_fraction("defect_fraction", defect_fraction)
    for i, problem in enumerate(problems):
        for field in ("question_id", "question_content", "public_test_cases", "private_test_cases"):
            if not isinstance(problem.get(field), str):
                raise ValueError(f"problem row {i}: field {field!r} is missing or not a string")
    n = len(problems)
    rng = random.Random(f"valley-demo-teacher|{seed}")
    defect_rows = sorted(rng.sample(range(n), round(defect_fraction * n)))
    defect_of = {row: DEFECT_KINDS[j % len(DEFECT_KINDS)] for j, row in enumerate(defect_rows)}

    solutions = [reference_solution(p) for p in problems]
    wrong_rows = _wrong_solutions(problems, seed, round(wrong_fraction * n), rng)
    for row, mutant in wrong_rows.items():
        solutions[row] = mutant
    verdicts = run_solutions(list(zip(solutions, problems, strict=False)), per_test_timeout_s=0.5)

    wrong = set(wrong_rows)
    traces = []
    for i, (problem, code, verdict) in enumerate(zip(problems, solutions, verdicts, strict=False)):
        if i not in wrong and not verdict.passed:
            raise RuntimeError(f"reference solution of {problem['question_id']!r} fails its tests: {verdict.verdict}")
        if i in wrong and verdict.passed:
            raise RuntimeError(f"mutated solution of {problem['question_id']!r} passed on re-run")
        row_rng = random.Random(f"valley-demo-teacher|{seed}|text|{problem['question_id']}")
        generation = _generation(_reasoning(problem, row_rng), code, row_rng, defect_of.get(i))
        traces.append({
            "id": hashlib.md5(f"{DATASET}|{seed}|{problem['question_id']}".encode()).hexdigest(),
            "question_id": problem["question_id"],
            "question": problem["question_content"],
            "r1_generation": generation,
            "solution": code,
            "judgement": "right" if verdict.passed else "wrong",
            "pass_rate": 1.0 if verdict.passed else 0.0,
            "dataset": DATASET,
            "split": "train",
            "index": i,
            "difficulty": taco_difficulty(problem),
        })
    return traces


def trace_summary(traces: list[dict]) -> dict:
    """Counts for asset metadata: rows, right/wrong, and rows whose generation has no closed think or no code."""
    from valley_assets.science.text import extract_code, has_closed_think

    return {
        "n_traces": len(traces),
        "n_right": sum(t["judgement"] == "right" for t in traces),
        "n_wrong": sum(t["judgement"] == "wrong" for t in traces),
        "n_unclosed_think": sum(not has_closed_think(t["r1_generation"]) for t in traces),
        "n_no_code": sum(extract_code(t["r1_generation"]) is None for t in traces),
        "difficulty_mix": json.dumps({d: sum(t["difficulty"] == d for t in traces)
                                      for d in sorted({t["difficulty"] for t in traces})}),
    }
