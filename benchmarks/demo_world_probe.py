"""Probe of the demo world's design: does distillation teach the tiny student, on held-out problems, in the budget?

One run builds a candidate world (problems, teacher traces, tiny student pre-trained on generic text and on direct
solutions of training-side problems), then for each size in --sizes fine-tunes the base student on the first N pool
rows through the study's own SFT entrypoint (`python -m valley_assets.training.sft`: TRL, packing, the demo recipe
with --epochs/--lr as overrides), samples --n-samples answers per held-out evaluation problem through the study's
`TransformersBackend` (the profile's sampling), grades them with the demo runner, and prints one JSON line per size:
pass@1 with a 95% bootstrap interval over problems, completion rate, think rate, mean completion tokens, wall times.

The pool here is the teacher's traces with a closed think block and extractable code (the pool's format checks), in
a seeded order; the study's pool also deduplicates and decontaminates, which changes nothing on this world.

    nice -n 15 .venv/bin/python benchmarks/demo_world_probe.py --sizes 0 10 100 300
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _rate_ci(values: list[float], seed: int = 0) -> list[float]:
    from valley_assets.analysis.bootstrap import bootstrap_mean

    est = bootstrap_mean(np.asarray(values, dtype=float), n_boot=1000, seed=seed)
    return [round(est.value, 3), round(est.ci_low, 3), round(est.ci_high, 3)]


def build_base(args, train: list[dict], traces: list[dict], out: Path) -> dict:
    from valley_assets.demo.tiny_model import build_tiny_student, demo_pretraining_texts, generic_corpus

    corpus = [p["question_content"] for p in train] + [t["r1_generation"] for t in traces] + \
        generic_corpus(args.seed, 2000)
    pretrain = demo_pretraining_texts(args.seed, n_generic=args.n_generic, n_direct=args.n_direct,
                                      direct_difficulties=tuple(args.direct_difficulties))
    return build_tiny_student(out, corpus, seed=args.seed, pretrain_steps=args.pretrain_steps,
                              pretrain_texts=pretrain, hidden_size=args.hidden, num_layers=args.layers,
                              num_heads=args.heads, num_kv_heads=max(1, args.heads // 2),
                              intermediate_size=3 * args.hidden, seq_len=args.seq_len, batch_size=args.batch,
                              learning_rate=args.pretrain_lr, vocab_size=args.vocab, num_threads=args.threads)


def run_sft(args, base: Path, rows: list[dict], out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    train_file = out / "train.jsonl"
    with train_file.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    overrides = {"num_train_epochs": args.epochs, "learning_rate": args.lr, "max_length": args.max_length,
                 "save_steps": 10_000}
    if args.global_batch:
        # The recipe's global batch (and the per-device batch under it: one process here, so equal) sets how many
        # optimizer steps the same tokens buy.
        overrides |= {"global_batch_size": args.global_batch, "per_device_batch_size": args.global_batch}
    params = {"recipe": {"base": "demo-tiny", **overrides}, "train_file": str(train_file),
              "base_model": str(base), "output_dir": str(out / "run"), "resume_from_checkpoint": None}
    (out / "params.json").write_text(json.dumps(params))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    proc = subprocess.run([sys.executable, "-m", "valley_assets.training.sft", "--params", str(out / "params.json")],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"SFT failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "run" / "training_summary.json").read_text())
    return {"model": str(out / "run"), "steps": summary.get("steps"), "final_loss": summary.get("final_loss")}


def evaluate(args, model_dir: str, problems: list[dict]) -> dict:
    import torch

    from valley_assets.demo.runner import run_solutions
    from valley_assets.generation.backends import GenerationRequest, SamplingConfig, TransformersBackend
    from valley_assets.generation.prompts import problem_messages
    from valley_assets.science.text import extract_code, has_closed_think

    torch.set_num_threads(args.threads)
    backend = TransformersBackend.from_pretrained(model_dir, batch_size=args.gen_batch, num_threads=args.threads)
    requests = [GenerationRequest(p["question_id"], tuple(backend.render(problem_messages(p, args.prompt_id))),
                                  tuple(range(args.n_samples))) for p in problems]
    sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                              seed=args.seed)
    completions = backend.generate(requests, sampling)
    jobs = [(extract_code(c.text) or "", p) for p, cs in zip(problems, completions, strict=True) for c in cs]
    verdicts = iter(run_solutions(jobs, per_test_timeout_s=1.0))
    passed, complete, think, tokens, per_family = [], [], [], [], {}
    for p, cs in zip(problems, completions, strict=True):
        ok = [next(verdicts).passed for _ in cs]
        passed.append(sum(ok) / len(cs))
        complete.append(sum(c.finish_reason == "stop" and extract_code(c.text) is not None for c in cs) / len(cs))
        think.append(sum(has_closed_think(c.text) for c in cs) / len(cs))
        tokens.extend(c.completion_tokens for c in cs)
        family = p["question_id"].split("-")[2]
        per_family.setdefault(family, []).append(passed[-1])
    return {"pass@1": _rate_ci(passed), "completion_rate": round(float(np.mean(complete)), 3),
            "think_rate": round(float(np.mean(think)), 3), "mean_completion_tokens": round(float(np.mean(tokens)), 1),
            "solved_families": sorted(f for f, v in per_family.items() if sum(v) > 0),
            "example": completions[0][0].text[:400]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=360)
    ap.add_argument("--n-eval", type=int, default=36)
    ap.add_argument("--sizes", type=int, nargs="+", default=[0, 10, 100, 300])
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--global-batch", type=int, default=0, help="SFT global batch (0: the demo recipe's)")
    ap.add_argument("--max-length", type=int, default=640)
    ap.add_argument("--pretrain-steps", type=int, default=300)
    ap.add_argument("--pretrain-lr", type=float, default=3e-3)
    ap.add_argument("--n-generic", type=int, default=3000)
    ap.add_argument("--n-direct", type=int, default=0, help="training-side problems with direct solutions")
    ap.add_argument("--direct-difficulties", nargs="+", default=["EASY", "MEDIUM", "MEDIUM_HARD", "HARD", "VERY_HARD"])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt-id", default="lcb-reasoning")
    ap.add_argument("--n-samples", type=int, default=2)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--max-new-tokens", type=int, default=320)
    ap.add_argument("--gen-batch", type=int, default=36)
    ap.add_argument("--wrong-fraction", type=float, default=0.3)
    ap.add_argument("--families", nargs="+", help="restrict the world to these families (probe only: monkeypatched)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for pre-training, SFT and sampling")
    ap.add_argument("--eval-seen", type=int, default=0,
                    help="also evaluate each fine-tuned student on this many of the training problems its SFT rows came "
                         "from (in pool order): pass@1 on problems it was taught, beside the held-out pass@1")
    ap.add_argument("--cache", default="/tmp/demo_probe_cache", help="base students are reused across runs from here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from valley_assets.demo import problems as demo_problems

    if args.families:
        demo_problems.FAMILIES = tuple(demo_problems.FAMILY_BY_NAME[f] for f in args.families)
    from valley_assets.demo.problems import make_demo_problems
    from valley_assets.demo.teacher import demo_teacher_traces
    from valley_assets.generation.prompts import problem_messages
    from valley_assets.science.text import extract_code, has_closed_think

    t0 = time.time()
    train, evaluation = make_demo_problems(args.seed, args.n_train, args.n_eval)
    traces = demo_teacher_traces(train, args.seed, wrong_fraction=args.wrong_fraction, defect_fraction=0.04)
    pool = [t for t in traces if has_closed_think(t["r1_generation"]) and extract_code(t["r1_generation"])]
    random.Random(f"probe-pool|{args.seed}").shuffle(pool)
    by_id = {p["question_id"]: p for p in train}
    t_world = time.time() - t0
    print(json.dumps({"args": vars(args), "world_s": round(t_world, 1), "pool_rows": len(pool)}), flush=True)

    base_keys = ("families", "seed", "n_train", "pretrain_steps", "pretrain_lr", "n_generic", "n_direct", "direct_difficulties",
                 "hidden", "layers", "heads", "vocab", "seq_len", "batch", "wrong_fraction")
    # The cached base student depends on the world's source: the tiny model, the world builder and every family module.
    world_sources = ["tiny_model.py", "problems.py", *sorted(p.name for p in (REPO / "valley_assets/demo").glob("famil*.py"))]
    src = b"".join((REPO / "valley_assets/demo" / name).read_bytes() for name in world_sources)
    key = hashlib.sha256((json.dumps({k: getattr(args, k) for k in base_keys}) + hashlib.sha256(src).hexdigest())
                         .encode()).hexdigest()[:16]
    base = Path(args.cache) / key
    t1 = time.time()
    if not (base / "config.json").exists():
        info = build_base(args, train, traces, base)
        (base / "info.json").write_text(json.dumps({k: v for k, v in info.items() if k != "pretrain_loss_curve"}))
    info = json.loads((base / "info.json").read_text())
    print(json.dumps({"base": str(base), "build_s": round(time.time() - t1, 1), **info}), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            t2 = time.time()
            if size == 0:
                model, sft = str(base), {}
            else:
                rows = [{"messages": [*problem_messages(by_id[t["question_id"]], args.prompt_id),
                                      {"role": "assistant", "content": t["r1_generation"]}]} for t in pool[:size]]
                sft = run_sft(args, base, rows, Path(tmp) / f"sft{size}")
                model = sft["model"]
            t3 = time.time()
            result = evaluate(args, model, evaluation)
            if args.eval_seen:
                # The generalization gap: problems whose traces were in this student's SFT rows.
                seen_ids = list(dict.fromkeys(t["question_id"] for t in pool[:size]))[:args.eval_seen]
                seen = evaluate(args, model, [by_id[q] for q in seen_ids]) if seen_ids else {}
                result["seen"] = {"n_problems": len(seen_ids),
                                  **{k: seen[k] for k in ("pass@1", "completion_rate", "think_rate") if k in seen}}
            print(json.dumps({"size": size, **result, "sft_steps": sft.get("steps"),
                              "sft_final_loss": sft.get("final_loss"), "sft_s": round(t3 - t2, 1),
                              "eval_s": round(time.time() - t3, 1)}), flush=True)


if __name__ == "__main__":
    main()
