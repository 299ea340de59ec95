"""Why do the demo's students fail? A reading of every graded sample of a finished `make demo`, by execution.

Each evaluation problem is a new instance of a training family whose parameters (a separator, an operation, a
modulus...) never occur in training (valley_assets/demo/problems.py). A failing answer can therefore be wrong in
two different ways: the student wrote a program of the right family for parameters it was taught (it copied a
sibling instead of reading the question), or it wrote something else. This script tells them apart by running each
failing answer on every training problem of the same family with the demo's checker: an answer that passes one of
them solves a sibling, not the question.

Classes, per sample (the first that applies):
  AC          passed the evaluation problem (the grader's verdict)
  no_code     the answer has no code block or was cut off at the token budget (completion fails)
  no_compile  the code does not compile (SyntaxError, IndentationError)
  sibling     a correct program for another instance of the same family (passes one of its training problems)
  crashes     any other runtime error (RE: a wrong input format, a missing name, the wrong function name...)
  wrong       a program that runs and prints a wrong answer (WA), or is too slow (TLE)

    .venv/bin/python benchmarks/demo_failure_reading.py --storage .valley/demo
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

CLASSES = ("AC", "no_code", "no_compile", "sibling", "crashes", "wrong")


def read_jsonl(path: Path) -> list[dict]:
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def classify(storage: Path, student: str, size: str, release: str, prompt_id: str, train_by_family: dict) -> dict:
    from valley_assets.demo.problems import parse_question_id
    from valley_assets.demo.runner import run_solutions
    from valley_assets.science.text import extract_code

    samples = read_jsonl(storage / "generations" / student / size / release / prompt_id / "samples.jsonl")
    results = json.loads((storage / "grades" / student / size / release / prompt_id / "results.json").read_text())
    verdicts = results["results"]
    classes: dict[tuple[str, int], str] = {}
    sibling_jobs: list[tuple[tuple[str, int], str, dict]] = []
    for sample in samples:
        key = (sample["question_id"], sample["sample_idx"])
        verdict = verdicts[key[0]][key[1]]
        code = extract_code(sample["text"])
        if verdict["verdict"] == "AC":
            classes[key] = "AC"
        elif code is None or sample["finish_reason"] != "stop":
            classes[key] = "no_code"
        elif (verdict.get("failure") or {}).get("error_type") in ("SyntaxError", "IndentationError"):
            classes[key] = "no_compile"
        else:
            classes[key] = "crashes" if verdict["verdict"] == "RE" else "wrong"
            family = parse_question_id(key[0])[2]
            sibling_jobs.extend((key, code, p) for p in train_by_family.get(family, []))
    passed_sibling = set()
    for (key, _, _), result in zip(sibling_jobs, run_solutions([(c, p) for _, c, p in sibling_jobs]), strict=True):
        if result.passed:
            passed_sibling.add(key)
    for key in passed_sibling:
        classes[key] = "sibling"
    counts = collections.Counter(classes.values())
    return {"size": size, "samples": len(classes), **{c: counts.get(c, 0) for c in CLASSES},
            "siblings_tried": len(sibling_jobs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--storage", default=".valley/demo", help="the demo profile's storage_root")
    ap.add_argument("--student", default="tiny-qwen2")
    ap.add_argument("--sizes", nargs="+", default=["0", "1k", "10k", "30k"])
    ap.add_argument("--release", default="release_v1")
    ap.add_argument("--prompt-id", default="lcb-reasoning")
    ap.add_argument("--seed", type=int, default=0, help="the demo world's seed (profile data.seed)")
    ap.add_argument("--n-train", type=int, default=360, help="the world's training problems (profile data.demo)")
    args = ap.parse_args()

    from valley_assets.demo.problems import make_demo_problems, parse_question_id

    train, _ = make_demo_problems(args.seed, args.n_train, 0)
    train_by_family: dict[str, list[dict]] = collections.defaultdict(list)
    for problem in train:
        train_by_family[parse_question_id(problem["question_id"])[2]].append(problem)
    print("| data size | samples | " + " | ".join(CLASSES) + " |")
    print("|---|---|" + "---|" * len(CLASSES))
    for size in args.sizes:
        row = classify(Path(args.storage), args.student, size, args.release, args.prompt_id, train_by_family)
        print(f"| {size} | {row['samples']} | " + " | ".join(str(row[c]) for c in CLASSES) + " |", flush=True)


if __name__ == "__main__":
    main()
