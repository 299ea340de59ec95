"""Grader benchmarks: throughput and verdicts vs LiveCodeBench's official harness, per-test overhead, verdict flips.

    python benchmarks/grader_bench.py --harness /tmp/lcb [--workload realistic no-tle student student-no-tle
        tle-heavy] [--problems 200] [--samples 4] [--workers 2] [--backend process] [--runs 3] [--flip-problems 40]
        [--skip-overhead]

--harness: a checkout of github.com/LiveCodeBench/LiveCodeBench (never committed here); its
lcb_runner.evaluation.compute_code_generation_metrics.codegen_metrics grades the same problems and programs with
the same parallelism (num_process_evaluate = --workers). With --runs N every workload is graded N times, ours and
the harness's alternating which goes first, so a change in the machine's load hits both sides alike.
Workloads, on real problems from /work/shared/data (tests/grading/grading_lcb_data.py):
- realistic: `--samples` generations per problem shaped like a 7-8B model's (benchmarks/grader_workload.py, mix
  AC 30 / WA 48 / RE 17 / syntax 3 / TLE 2 %);
- no-tle: the same generations without the TLE ones (what per-sample overhead alone does);
- student, student-no-tle: the same for a distilled 7B student's output (grader_workload.STUDENT_7B_MIX: 45% of
  the generations have no code, 8% are cut off mid-program);
- tle-heavy: the first benchmark's workload: per problem an oracle embedding its tests (AC), a wrong and a crashing
  variant, and an infinite loop on every 25th problem.
Verdicts are compared as pass/fail and as classes (AC, WA, TLE, RE; our MLE/OLE count as RE, harness codes -2 WA,
-3 TLE, -4 RE, -1 global timeout = TLE).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "grading"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from grader_workload import REALISTIC_MIX, STUDENT_7B_MIX, realistic_generations  # noqa: E402
from grading_lcb_data import codeforces_records, functional_oracle, lcb_records, stdin_oracle, tests_of  # noqa: E402

from valley_assets.grading import grade, problem_from_record  # noqa: E402
from valley_assets.grading.grader import default_workers  # noqa: E402

HARNESS_CLASS = {-1: "TLE", -2: "WA", -3: "TLE", -4: "RE"}
OUR_CLASS = {"AC": "AC", "WA": "WA", "TLE": "TLE", "RE": "RE", "MLE": "RE", "OLE": "RE"}


def tle_heavy_programs(record: dict, index: int) -> list[str]:
    functional = bool(json.loads(record["metadata"]).get("func_name"))
    oracle = functional_oracle if functional else stdin_oracle
    codes = [oracle(record), oracle(record, "lambda v: [v]" if functional else "lambda s: s + '\\nX'"),
             oracle(record).replace("TABLE = ", "raise RuntimeError('crash')\nTABLE = ", 1)]
    if index % 25 == 0:
        codes.append("while True:\n    pass\n")
    return codes


def run_ours(records, generations, workers, backend, timeout):
    gens = [{"question_id": r["question_id"], "code_list": g} for r, g in zip(records, generations) if g]
    started = time.monotonic()
    out = grade([r for r, g in zip(records, generations) if g], gens, backend=backend, workers=workers,
                timeout_s=timeout)
    elapsed = time.monotonic() - started
    classes = [[OUR_CLASS[s["verdict"]] for s in out["results"][r["question_id"]]] if g else []
               for r, g in zip(records, generations)]
    return classes, elapsed, out["isolation"]


def run_harness(harness: Path, records, generations, workers, timeout):
    if str(harness) not in sys.path:
        sys.path.insert(0, str(harness))
    from lcb_runner.evaluation.compute_code_generation_metrics import evaluate_generations

    # What codegen_metrics does before computing metrics: one task per generation, graded by evaluate_generations
    # with num_process_evaluate processes (called directly: codegen_metrics wants equal-length lists).
    samples, flat = [], []
    for r, g in zip(records, generations):
        p = problem_from_record(r)
        sample = {"input_output": json.dumps({"inputs": list(p.inputs), "outputs": list(p.outputs),
                                              "fn_name": p.fn_name})}
        for code in g:
            samples.append(sample)
            flat.append([code])
    started = time.monotonic()
    results, _ = evaluate_generations(samples, flat, num_process_evaluate=workers, timeout=timeout)
    elapsed = time.monotonic() - started
    classes, index = [], 0
    for g in generations:
        row = []
        for _ in g:
            res = results[index][0]
            row.append("AC" if all(x is True for x in res) else "WA" if res[-1] is False
                       else HARNESS_CLASS.get(res[-1], "RE"))
            index += 1
        classes.append(row)
    return classes, elapsed


def compare(records, ours, theirs):
    pass_fail, verdict_class = [], []
    for r, a, b in zip(records, ours, theirs):
        for j, (x, y) in enumerate(zip(a, b)):
            if (x == "AC") != (y == "AC"):
                pass_fail.append((r["question_id"], j, x, y))
            elif x != y:
                verdict_class.append((r["question_id"], j, x, y))
    return pass_fail, verdict_class


def workload(name: str, records: list[dict], samples: int, seed: int):
    if name == "tle-heavy":
        generations = [tle_heavy_programs(r, i) for i, r in enumerate(records)]
        return generations, None
    mix = STUDENT_7B_MIX if name.startswith("student") else REALISTIC_MIX
    generations, kinds = realistic_generations(records, tests_of, samples, seed=seed, mix=mix)
    if name.endswith("no-tle"):
        generations = [[c for c, k in zip(g, ks) if k != "TLE"] for g, ks in zip(generations, kinds)]
        kinds = [[k for k in ks if k != "TLE"] for ks in kinds]
    return generations, kinds


def per_test_overhead_ms(backend: str) -> float:
    """One trivial stdin program on a problem with 200 tiny tests, in a warm sandbox, start-up cancelled."""
    many = {"question_id": "overhead", "difficulty": "easy", "metadata": "{}", "private_test_cases": json.dumps(
        [{"input": f"{i}\n", "output": f"{i}\n", "testtype": "stdin"} for i in range(1, 200)]),
            "public_test_cases": json.dumps([{"input": "0\n", "output": "0\n", "testtype": "stdin"}])}
    per_test = []
    for _ in range(3):
        t0 = time.monotonic()
        grade([many], [{"question_id": "overhead", "code_list": ["print(input())"] * 20}], backend=backend, workers=1)
        t1 = time.monotonic()
        grade([many], [{"question_id": "overhead", "code_list": ["print(input())"]}], backend=backend, workers=1)
        t2 = time.monotonic()
        per_test.append(((t1 - t0) - (t2 - t1)) / (19 * 200))  # 19 extra samples of 200 tests
    return statistics.median(per_test) * 1000


def verdict_flips(records, generations, backend, timeout) -> int:
    gens = [{"question_id": r["question_id"], "code_list": g} for r, g in zip(records, generations) if g]
    kept = [r for r, g in zip(records, generations) if g]
    runs = {}
    for w in (1, 4):
        for run in range(3):
            out = grade(kept, gens, backend=backend, workers=w, timeout_s=timeout)
            runs[(w, run)] = [s["verdict"] for r in kept for s in out["results"][r["question_id"]]]
    reference = runs[(1, 0)]
    return sum(1 for v in runs.values() for a, b in zip(reference, v) if a != b)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--harness", type=Path, required=True)
    parser.add_argument("--workload", nargs="+", default=["realistic", "no-tle", "student", "student-no-tle", "tle-heavy"],
                        choices=["realistic", "no-tle", "student", "student-no-tle", "tle-heavy"])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--samples", type=int, default=4, help="generations per problem (realistic, no-tle)")
    parser.add_argument("--tle-heavy-problems", type=int, default=120)
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="the harness's num_process_evaluate (default: one process per core)")
    parser.add_argument("--our-workers", type=int, default=None,
                        help="our sandboxes (default: grade()'s default, grader.default_workers)")
    parser.add_argument("--backend", default="process")
    parser.add_argument("--timeout", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=1, help="times each workload is graded by both sides")
    parser.add_argument("--flip-problems", type=int, default=40, help="0 skips the workers 1 vs 4 flip check")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()

    everything = lcb_records() + codeforces_records()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, python "
          f"{platform.python_version()}; mixes realistic {REALISTIC_MIX}, student {STUDENT_7B_MIX}")
    figures = {}
    loads = []
    for run in range(args.runs):
        for name in args.workload:
            n = args.tle_heavy_problems if name == "tle-heavy" else args.problems
            records = everything[::max(1, len(everything) // n)][:n]
            generations, _ = workload(name, records, args.samples, args.seed)
            n_samples = sum(map(len, generations))
            load_before = os.getloadavg()[0]
            ours_first = run % 2 == 0
            for side in ("ours", "harness") if ours_first else ("harness", "ours"):
                if side == "ours":
                    ours, ours_s, isolation = run_ours(records, generations, args.our_workers, args.backend,
                                                       args.timeout)
                else:
                    theirs, theirs_s = run_harness(args.harness, records, generations, args.workers, args.timeout)
            load_after = os.getloadavg()[0]
            loads += [load_before, load_after]
            pass_fail, verdict_class = compare(records, ours, theirs)
            counts = {c: sum(row.count(c) for row in ours) for c in ("AC", "WA", "TLE", "RE")}
            print(f"[run {run + 1} {name}] {len(records)} problems, {n_samples} samples, harness workers "
                  f"{args.workers}, ours {args.our_workers or default_workers(1024)}: "
                  f"valley ({isolation}) {ours_s:.1f}s, LCB harness {theirs_s:.1f}s, speed-up "
                  f"{theirs_s / ours_s:.2f}x ({'ours' if ours_first else 'harness'} first); load average "
                  f"before/after {load_before:.1f}/{load_after:.1f}; verdicts {counts}; pass/fail disagreements "
                  f"{len(pass_fail)} {pass_fail[:5]}; verdict-class disagreements {len(verdict_class)} "
                  f"{verdict_class[:5]}", flush=True)
            entry = figures.setdefault(name, {"problems": len(records), "samples": n_samples, "verdicts": counts,
                                              "valley_s": [], "harness_s": [], "speedup": [], "load": [],
                                              "pass_fail_disagreements": [], "verdict_class_disagreements": []})
            entry["valley_s"].append(round(ours_s, 2))
            entry["harness_s"].append(round(theirs_s, 2))
            entry["speedup"].append(round(theirs_s / ours_s, 2))
            entry["load"].append([round(load_before, 1), round(load_after, 1)])
            entry["pass_fail_disagreements"].append(len(pass_fail))
            entry["verdict_class_disagreements"].append(len(verdict_class))
    for name in args.workload if args.runs else []:  # --runs 0: only the overhead / flip figures
        entry = figures[name]
        print(f"[{name}] median of {args.runs}: valley {statistics.median(entry['valley_s']):.1f}s, harness "
              f"{statistics.median(entry['harness_s']):.1f}s, speed-up {statistics.median(entry['speedup']):.2f}x "
              f"(runs {entry['speedup']})", flush=True)
    if loads:
        print(f"load average (1 min) over the runs: min {min(loads):.1f}, max {max(loads):.1f}", flush=True)
    if not args.skip_overhead:
        figures["per_test_ms"] = round(per_test_overhead_ms(args.backend), 3)
        print(f"per-test overhead, warm sandbox: {figures['per_test_ms']:.3f} ms (median of 3)", flush=True)
    if args.flip_problems:
        records = everything[::max(1, len(everything) // args.flip_problems)][:args.flip_problems]
        generations, _ = workload("realistic", records, args.samples, args.seed + 1)
        figures["flips"] = verdict_flips(records, generations, args.backend, args.timeout)
        figures["flip_samples"] = sum(map(len, generations))
        print(f"verdict flips across workers 1/4 x 3 runs ({figures['flip_samples']} realistic samples): "
              f"{figures['flips']}", flush=True)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
