"""Grader benchmarks: throughput and verdicts vs LiveCodeBench's official harness, per-test overhead, verdict flips.

    python benchmarks/grader_bench.py --harness /tmp/lcb [--problems 200] [--workers 2] [--backend process]

--harness: a checkout of github.com/LiveCodeBench/LiveCodeBench (never committed here); its
lcb_runner.evaluation.compute_code_generation_metrics.codegen_metrics grades the same problems and programs with
the same parallelism. Programs: for each real problem (tests/grading/grading_lcb_data.py) an oracle (AC), a wrong
variant (WA) and a crashing one (RE), plus a slow one on a few problems.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "grading"))

from grading_lcb_data import codeforces_records, functional_oracle, lcb_records, stdin_oracle  # noqa: E402

from valley_assets.grading import grade, problem_from_record  # noqa: E402


def programs_for(record: dict, index: int) -> list[str]:
    functional = bool(json.loads(record["metadata"]).get("func_name"))
    oracle = functional_oracle if functional else stdin_oracle
    codes = [oracle(record), oracle(record, "lambda v: [v]" if functional else "lambda s: s + '\\nX'"),
             oracle(record).replace("TABLE = ", "raise RuntimeError('crash')\nTABLE = ", 1)]
    if index % 25 == 0:
        codes.append("while True:\n    pass\n")
    return codes


def run_harness(harness: Path, records: list[dict], generations: list[list[str]], workers: int, timeout: int):
    sys.path.insert(0, str(harness))
    from lcb_runner.evaluation.compute_code_generation_metrics import codegen_metrics

    samples = []
    for r in records:
        p = problem_from_record(r)
        samples.append({"input_output": json.dumps({"inputs": list(p.inputs), "outputs": list(p.outputs),
                                                    "fn_name": p.fn_name})})
    # codegen_metrics wants the same number of generations per problem: pad with copies and ignore them.
    width = max(len(g) for g in generations)
    padded = [g + [g[0]] * (width - len(g)) for g in generations]
    started = time.monotonic()
    _, results, _ = codegen_metrics(samples, padded, k_list=[1], num_process_evaluate=workers, timeout=timeout)
    elapsed = time.monotonic() - started
    passed = [[all(x is True for x in results[i][j]) for j in range(len(generations[i]))]
              for i in range(len(records))]
    return passed, elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--harness", type=Path, required=True)
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default="process")
    parser.add_argument("--timeout", type=int, default=6)
    args = parser.parse_args()

    records = (lcb_records() + codeforces_records())[::max(1, 988 // args.problems)][:args.problems]
    generations = [programs_for(r, i) for i, r in enumerate(records)]
    gens = [{"question_id": r["question_id"], "code_list": g} for r, g in zip(records, generations)]
    n_samples = sum(map(len, generations))
    n_tests = sum(len(problem_from_record(r).inputs) for r in records)
    print(f"{len(records)} problems, {n_samples} samples, workers={args.workers}, backend={args.backend}")

    started = time.monotonic()
    ours = grade(records, gens, backend=args.backend, workers=args.workers, timeout_s=args.timeout)
    ours_s = time.monotonic() - started
    ours_passed = [[s["passed"] for s in ours["results"][r["question_id"]]] for r in records]
    print(f"valley ({ours['isolation']}): {ours_s:.1f}s, {n_samples / ours_s:.1f} samples/s")

    theirs_passed, theirs_s = run_harness(args.harness, records, generations, args.workers, args.timeout)
    print(f"LCB harness: {theirs_s:.1f}s, {n_samples / theirs_s:.1f} samples/s; speed-up {theirs_s / ours_s:.2f}x")
    disagreements = [(r["question_id"], j, a, b) for r, pa, pb in zip(records, ours_passed, theirs_passed)
                     for j, (a, b) in enumerate(zip(pa, pb)) if a != b]
    print(f"pass/fail disagreements: {len(disagreements)} of {n_samples}: {disagreements[:10]}")

    # Per-test overhead in a warm sandbox: one trivial stdin program on a problem with many tiny tests.
    many = {"question_id": "overhead", "difficulty": "easy", "metadata": "{}", "private_test_cases": json.dumps(
        [{"input": f"{i}\n", "output": f"{i}\n", "testtype": "stdin"} for i in range(1, 200)]),
            "public_test_cases": json.dumps([{"input": "0\n", "output": "0\n", "testtype": "stdin"}])}
    per_test = []
    for _ in range(3):
        t0 = time.monotonic()
        grade([many], [{"question_id": "overhead", "code_list": ["print(input())"] * 20}], backend=args.backend,
              workers=1)
        t1 = time.monotonic()
        grade([many], [{"question_id": "overhead", "code_list": ["print(input())"]}], backend=args.backend, workers=1)
        t2 = time.monotonic()
        per_test.append(((t1 - t0) - (t2 - t1)) / (19 * 200))  # 19 extra samples of 200 tests, start-up cancelled
    print(f"per-test overhead, warm sandbox: {statistics.median(per_test) * 1000:.2f} ms (median of 3)")

    # Verdict flips between --workers 1 and --workers 4, three runs each.
    verdict_runs = {}
    for w in (1, 4):
        for run in range(3):
            out = grade(records, gens, backend=args.backend, workers=w, timeout_s=args.timeout)
            verdict_runs[(w, run)] = [s["verdict"] for r in records for s in out["results"][r["question_id"]]]
    reference = verdict_runs[(1, 0)]
    flips = sum(1 for key, v in verdict_runs.items() for a, b in zip(reference, v) if a != b)
    print(f"verdict flips across workers 1/4 x 3 runs: {flips}")
    print(json.dumps({"problems": len(records), "samples": n_samples, "tests": n_tests, "valley_s": ours_s,
                      "harness_s": theirs_s, "speedup": theirs_s / ours_s, "disagreements": len(disagreements),
                      "per_test_ms": statistics.median(per_test) * 1000, "flips": flips}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
