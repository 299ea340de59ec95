"""`valley grade --problems PROBLEMS.jsonl --generations GENERATIONS.json --out RESULTS.json [...]`;
`valley grade --explain QUESTION_ID --out RESULTS.json` prints that problem's per-sample diagnostics.

Exit status: 0 graded, 2 bad arguments or bad input files, 3 the sandbox failed, 130 interrupted (the per-sample
log keeps what was graded; rerun the same command to finish).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from valley_assets.grading.backends import SandboxError
from valley_assets.grading.grader import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, grade
from valley_assets.grading.problems import ProblemFormatError, load_generations_json, load_problems_jsonl


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="valley grade", description="Grade generated programs exactly as "
                                     "LiveCodeBench does (pass@1 over all public+private tests).")
    parser.add_argument("--problems", help="LCB code_generation_lite records, one JSON per line")
    parser.add_argument("--generations", help='JSON list of {"question_id", "code_list"}')
    parser.add_argument("--out", required=True, help="results JSON (a .samples.jsonl log is kept next to it)")
    parser.add_argument("--backend", choices=["auto", "docker", "process"], default="auto")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="CPU seconds per test")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel sandboxes (default: 2 per CPU core, as many as memory allows)")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="address-space limit per program")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--explain", metavar="QUESTION_ID",
                        help="print each sample's verdict and why (first failing test, error, expected vs produced "
                             "output) for QUESTION_ID from the --out results file; grades nothing")
    return parser


def explain(results_path: str, question_id: str) -> str:
    """The per-sample diagnostics of one problem in a results file, as text."""
    with open(results_path, encoding="utf-8") as f:
        output = json.load(f)
    samples = output.get("results", {}).get(question_id)
    if samples is None:
        raise KeyError(f"question_id {question_id!r} is not in {results_path} "
                       f"({len(output.get('results', {}))} problems graded there)")
    passed = sum(1 for s in samples if s and s["passed"])
    lines = [f"{question_id}: {len(samples)} samples, {passed} passed ({results_path})"]
    for index, sample in enumerate(samples):
        if sample is None:
            lines.append(f"#{index} not graded")
            continue
        head = f"#{index} {sample['verdict']:<3} tests run {sample['tests_run']}, {sample['time_s']:.3f} s CPU"
        failure = sample.get("failure")
        if failure is None:
            lines.append(head if sample["passed"] or "failure" in sample
                         else f"{head}; no diagnostics (graded before results carried them)")
            continue
        where = "before the first test" if failure.get("test") is None else f"test {failure['test']}"
        error = ": ".join(p for p in (failure.get("error_type"), failure.get("error_message")) if p)
        lines.append(f"{head}; {where}: {error or 'no message'}")
        for label in ("inputs", "expected", "output"):
            if failure.get(label) is not None:
                lines.append(f"    {label + ':':<10}{failure[label]!r}")
    return "\n".join(lines)


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["grade"]:
        argv = argv[1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.explain is not None:
        try:
            print(explain(args.out, args.explain))
        except (OSError, ValueError, KeyError) as exc:
            print(f"valley grade --explain: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
            return 2
        return 0
    if not args.problems or not args.generations:
        parser.error("--problems and --generations are required (unless --explain)")
    try:
        problems = load_problems_jsonl(args.problems)
        generations = load_generations_json(args.generations)
    except (OSError, ProblemFormatError) as exc:
        print(f"valley grade: {exc}", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        if not args.quiet and (done == total or done % 50 == 0):
            print(f"graded {done}/{total}", file=sys.stderr, flush=True)

    # SIGTERM (a killed job) unwinds like Ctrl-C, so the sandboxes are removed on the way out.
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        output = grade(problems, generations, backend=args.backend, timeout_s=args.timeout, workers=args.workers,
                       memory_mb=args.memory_mb, results_path=args.out, progress=progress)
    except (ProblemFormatError, ValueError) as exc:
        print(f"valley grade: {exc}", file=sys.stderr)
        return 2
    except SandboxError as exc:
        print(f"valley grade: sandbox failure: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("valley grade: interrupted; rerun the same command to grade what is missing", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if output["warning"]:
        print(output["warning"], file=sys.stderr)
    summary = output["summary"]
    print(json.dumps({"pass@1": summary["pass@1"], "per_difficulty": summary["per_difficulty"],
                      "n_problems": summary["n_problems"], "n_samples": summary["n_samples"],
                      "backend": output["backend"], "isolation": output["isolation"], "out": args.out}))
    return 0
