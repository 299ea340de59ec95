"""The demo world is learnable: a student distilled on the demo teacher's traces beats the base student on held-out
evaluation problems by more than the noise (a paired bootstrap over problems), through the study's own SFT
entrypoint. Reduced config (few problems, short pre-training); not timed.

The measure is the teacher-forced loss of the teacher's answer on each held-out problem (the traces the demo
teacher writes for the evaluation problems, used only to score, never to train): what distillation optimises, read
on problems the student never saw. pass@1 of sampled answers is the study's own measure; at this reduced budget it
is zero for both models (benchmarks/RESULTS.md), so it cannot show a difference here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from valley_assets.analysis.bootstrap import paired_bootstrap_difference
from valley_assets.demo.problems import make_demo_problems
from valley_assets.demo.teacher import demo_teacher_traces
from valley_assets.demo.tiny_model import build_tiny_student, demo_pretraining_texts, generic_corpus
from valley_assets.generation.prompts import problem_messages

REPO = Path(__file__).resolve().parents[2]
PROMPT_ID = "lcb-reasoning"


def per_problem_answer_loss(model_dir: Path, problems: list[dict], answers: list[str]) -> np.ndarray:
    """Mean token cross-entropy of each answer (assistant turn only) after its LCB prompt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    losses = []
    with torch.no_grad():
        for problem, answer in zip(problems, answers, strict=True):
            messages = [*problem_messages(problem, PROMPT_ID), {"role": "assistant", "content": answer}]
            enc = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
            ids = torch.tensor([enc["input_ids"]])
            labels = torch.where(torch.tensor([enc["assistant_masks"]]) == 1, ids, torch.tensor(-100))
            losses.append(model(input_ids=ids, labels=labels).loss.item())
    return np.asarray(losses)


@pytest.mark.slow
def test_distilled_student_beats_base_on_held_out_problems(tmp_path):
    torch.set_num_threads(1)
    train, evaluation = make_demo_problems(0, 120, 24)
    traces = demo_teacher_traces(train, 0, wrong_fraction=0.3, defect_fraction=0.0)
    base = tmp_path / "base"
    corpus = [p["question_content"] for p in train] + [t["r1_generation"] for t in traces] + generic_corpus(0, 200)
    build_tiny_student(base, corpus, seed=0, pretrain_steps=40, hidden_size=64, num_layers=2, num_heads=2,
                       num_kv_heads=1, intermediate_size=192, seq_len=512, batch_size=4,
                       pretrain_texts=demo_pretraining_texts(0, n_generic=200, n_direct=120))
    with (tmp_path / "train.jsonl").open("w") as fh:
        for p, t in zip(train, traces, strict=True):
            messages = [*problem_messages(p, PROMPT_ID), {"role": "assistant", "content": t["r1_generation"]}]
            fh.write(json.dumps({"messages": messages}) + "\n")
    params = {"recipe": {"base": "demo-tiny", "num_train_epochs": 3, "max_length": 768},
              "train_file": str(tmp_path / "train.jsonl"), "base_model": str(base),
              "output_dir": str(tmp_path / "sft"), "resume_from_checkpoint": None}
    (tmp_path / "params.json").write_text(json.dumps(params))
    proc = subprocess.run([sys.executable, "-m", "valley_assets.training.sft", "--params", str(tmp_path / "params.json")],
                          cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]

    held_out = demo_teacher_traces(evaluation, 0, wrong_fraction=0.0, defect_fraction=0.0)  # scoring only
    answers = [t["r1_generation"] for t in held_out]
    base_loss = per_problem_answer_loss(base, evaluation, answers)
    distilled_loss = per_problem_answer_loss(tmp_path / "sft", evaluation, answers)
    diff = paired_bootstrap_difference(distilled_loss, base_loss, n_boot=1000, seed=0)
    assert diff.ci_high < 0, (diff, base_loss.mean(), distilled_loss.mean())  # lower on held-out, beyond the noise
    assert not {p["question_content"] for p in evaluation} & {p["question_content"] for p in train}
