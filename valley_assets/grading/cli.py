"""`valley grade --problems PROBLEMS.jsonl --generations GENERATIONS.json --out RESULTS.json [...]`.

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
    parser.add_argument("--problems", required=True, help="LCB code_generation_lite records, one JSON per line")
    parser.add_argument("--generations", required=True, help='JSON list of {"question_id", "code_list"}')
    parser.add_argument("--out", required=True, help="results JSON (a .samples.jsonl log is kept next to it)")
    parser.add_argument("--backend", choices=["auto", "docker", "process"], default="auto")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="CPU seconds per test")
    parser.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: CPU count)")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="address-space limit per program")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["grade"]:
        argv = argv[1:]
    args = build_parser().parse_args(argv)
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
