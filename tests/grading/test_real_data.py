"""The 580 real LiveCodeBench problems (303 stdin, 277 functional) and 408 Codeforces problems, with oracle
programs (correct by construction) and variants whose verdicts follow from the harness rules."""

import json
import re

from grading_lcb_data import codeforces_records, functional_oracle, lcb_records, stdin_oracle
from grading_lcb_data import tests_of as all_tests_of

from valley_assets.grading import grade


def _all_numeric(text: str) -> bool:
    return all(re.fullmatch(r"-?\d+", token) for token in text.split())


def test_real_problems_oracles_and_variants():
    records = lcb_records() + codeforces_records()
    generations, expected = [], {}
    for i, r in enumerate(records):
        qid = r["question_id"]
        if i % 5:  # every problem gets its oracle; every fifth also the variants (keeps the test under a minute)
            generations.append({"question_id": qid, "code_list": [
                functional_oracle(r) if json.loads(r["metadata"]).get("func_name") else stdin_oracle(r)]})
            expected[qid] = ["AC"]
            continue
        if json.loads(r["metadata"]).get("func_name"):
            codes = [(functional_oracle(r), "AC"),
                     # a tuple at the top level counts as a list; for a non-list answer tuple() differs
                     (functional_oracle(r, "lambda v: tuple(v) if isinstance(v, list) else v"), "AC"),
                     (functional_oracle(r, "lambda v: [v]"), "WA")]
        else:
            outputs = [t["output"] for t in all_tests_of(r)]
            codes = [
                (stdin_oracle(r), "AC"),
                (stdin_oracle(r, main_guard=True, finish="sys.exit(0)"), "AC"),
                (stdin_oracle(r, "lambda s: '\\n'.join('  ' + l + ' \\t' for l in s.split('\\n')) + '\\n\\n'"), "AC"),
                (stdin_oracle(r, "lambda s: s + '\\nEXTRA'"), "WA"),
            ]
            if all(_all_numeric(o) and o.strip() for o in outputs):
                codes.append((stdin_oracle(r, "lambda s: re.sub(r'-?\\d+', lambda m: m.group() + '.0', s)")
                               .replace("import sys", "import sys, re"), "AC"))
            if any(re.search(r"[A-Za-z]", o) for o in outputs):
                letters = "lambda s: s.swapcase()"
                codes.append((stdin_oracle(r, letters), "WA"))
        generations.append({"question_id": qid, "code_list": [c for c, _ in codes]})
        expected[qid] = [v for _, v in codes]
    out = grade(records, generations, backend="process", workers=2, timeout_s=6.0)
    got = {qid: [s["verdict"] for s in samples] for qid, samples in out["results"].items()}
    mismatches = {qid: (got[qid], expected[qid]) for qid in expected if got[qid] != expected[qid]}
    assert not mismatches, list(mismatches.items())[:5]
    assert out["summary"]["n_problems"] == len(records) == 988
    assert 0 < out["summary"]["pass@1"] < 1
    assert set(out["summary"]["per_difficulty"]) == {"easy", "medium", "hard"}
