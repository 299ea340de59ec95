"""Probe of the demo world: can the tiny student learn something from the demo teacher's traces?

Builds the demo problems, teacher traces and tiny student (as the demo profile does), then fine-tunes the student
with a plain PyTorch loop (assistant-only loss through the chat template's generation mask) on the first N usable
traces for each N in --sizes, generates one greedy answer per eval problem, and grades it with the demo runner.
It is a probe of the data, not the study's training path (that is TRL, in valley_assets/training).

    .venv/bin/python benchmarks/demo_world_probe.py --sizes 0 100 300 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from valley_assets.demo.problems import make_demo_problems
from valley_assets.demo.runner import run_solutions
from valley_assets.demo.teacher import demo_teacher_traces
from valley_assets.demo.tiny_model import build_tiny_student, generic_corpus
from valley_assets.generation.prompts import problem_messages
from valley_assets.science.text import extract_code, has_closed_think


def sft(model, tokenizer, examples, epochs, lr, batch_size, max_length, seed, device):
    torch.manual_seed(seed)
    rows = []
    for messages in examples:
        enc = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        ids = enc["input_ids"][:max_length]
        labels = [t if m else -100 for t, m in zip(ids, enc["assistant_masks"][:max_length], strict=False)]
        rows.append((ids, labels))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = epochs * ((len(rows) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * (1 - s / steps))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(rows)).tolist()
        for start in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[start:start + batch_size]]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.tensor([r[0] + [tokenizer.pad_token_id] * (width - len(r[0])) for r in batch], device=device)
            lab = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in batch], device=device)
            att = (torch.arange(width, device=device)[None, :] < torch.tensor([len(r[0]) for r in batch],
                                                                              device=device)[:, None]).long()
            loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
    model.eval()
    return loss.item()


@torch.no_grad()
def pass_at_1(model, tokenizer, problems, prompt_id, max_new_tokens, device):
    codes = []
    n_think = 0
    for p in problems:
        inputs = tokenizer.apply_chat_template(problem_messages(p, prompt_id), add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True).to(device)
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        text = tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        n_think += has_closed_think(text)
        codes.append(extract_code(text) or "")
    verdicts = run_solutions(list(zip(codes, problems, strict=False)), per_test_timeout_s=1.0)
    per_diff: dict[str, list[bool]] = {}
    for p, v in zip(problems, verdicts, strict=False):
        per_diff.setdefault(p["difficulty"], []).append(v.passed)
    return (sum(v.passed for v in verdicts) / len(problems), n_think / len(problems),
            {d: sum(x) / len(x) for d, x in sorted(per_diff.items())})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=360)
    ap.add_argument("--n-eval", type=int, default=36)
    ap.add_argument("--sizes", type=int, nargs="+", default=[0, 100, 300])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--pretrain-steps", type=int, default=300)
    ap.add_argument("--prompt-id", default="lcb-reasoning")
    ap.add_argument("--max-new-tokens", type=int, default=320)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"

    t0 = time.time()
    train, evaluation = make_demo_problems(args.seed, args.n_train, args.n_eval)
    traces = demo_teacher_traces(train, args.seed, wrong_fraction=0.3, defect_fraction=0.04)
    usable = [t for t in traces if has_closed_think(t["r1_generation"]) and extract_code(t["r1_generation"])]
    by_id = {p["question_id"]: p for p in train}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = [p["question_content"] for p in train] + [t["r1_generation"] for t in traces] + \
            generic_corpus(args.seed, 2000)
        info = build_tiny_student(tmp, corpus, seed=args.seed, pretrain_steps=args.pretrain_steps)
        t_world = time.time() - t0
        results = []
        for size in args.sizes:
            tokenizer = AutoTokenizer.from_pretrained(tmp)
            model = AutoModelForCausalLM.from_pretrained(tmp).to(device)
            t1 = time.time()
            examples = [problem_messages(by_id[t["question_id"]], args.prompt_id)
                        + [{"role": "assistant", "content": t["r1_generation"]}] for t in usable[:size]]
            final_loss = sft(model, tokenizer, examples, args.epochs, args.lr, 8, 640, args.seed, device) \
                if examples else None
            t_sft = time.time() - t1
            p1, think_rate, per_diff = pass_at_1(model, tokenizer, evaluation, args.prompt_id,
                                                 args.max_new_tokens, device)
            results.append({"size": size, "pass@1": round(p1, 3), "think_rate": round(think_rate, 3),
                            "per_difficulty": per_diff, "final_sft_loss": final_loss, "sft_s": round(t_sft, 1),
                            "eval_s": round(time.time() - t1 - t_sft, 1)})
            print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"device": device, "world_build_s": round(t_world, 1), "n_usable_traces": len(usable),
                      "student": {k: v for k, v in info.items() if k != "pretrain_loss_curve"}}))


if __name__ == "__main__":
    main()
