"""Generation throughput: our path (`generate_samples` over a backend) vs the raw engine, same model and prompts.

GPU (vLLM installed):
    python benchmarks/generation_throughput.py --backend vllm --model Qwen/Qwen2.5-7B-Instruct \
        --problems ../shared/data/lcb_2023-05_to_2024-07_public_tests.json --num-problems 128 --n 4 \
        --max-new-tokens 2048 --chunk-size 64
  runs raw `LLM.generate` (prompt strings from the chat template, one SamplingParams with n) and then our path
  (`VLLMBackend` + chunked, resumable `generate_samples` writing JSONL) on the same `vllm.LLM`, and prints samples/s
  and output tokens/s for both.

CPU (the demo path):
    python benchmarks/generation_throughput.py --backend transformers --model demo-tiny --n 2 --max-new-tokens 320
  `demo-tiny` builds the demo's tiny Qwen2 (valley_assets.demo.tiny_model, demo sizes, untrained: samples run to the
  token limit, which is what a throughput figure wants); the raw baseline is one `model.generate` call per batch.

Problems: a Problem JSONL, or the shared LiveCodeBench JSON (`problem`, `starter_code`), or the demo's eval problems
(`--problems demo`). Prints one JSON object per path.
Run from the repository root with the project's venv (`.venv/bin/python benchmarks/generation_throughput.py ...`).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout, package not installed

from valley_assets.generation.backends import SamplingConfig, TransformersBackend, VLLMBackend
from valley_assets.generation.prompts import problem_messages
from valley_assets.generation.samples import generate_samples


def load_problems(spec: str, limit: int) -> list[dict]:
    if spec == "demo":
        from valley_assets.demo.problems import make_demo_problems

        return make_demo_problems(seed=0, n_train=0, n_eval=limit)[1][:limit]
    path = Path(spec)
    if path.suffix == ".jsonl":
        problems = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:  # the shared LiveCodeBench dump: a list of {problem, starter_code, tests}
        raw = json.loads(path.read_text())
        problems = [{"question_id": f"lcb{i:04d}", "question_content": r["problem"],
                     "starter_code": r.get("starter_code") or ""} for i, r in enumerate(raw)]
    return problems[:limit]


def build_demo_tiny(folder: Path) -> str:
    from valley_assets.demo.tiny_model import build_tiny_student, generic_corpus

    build_tiny_student(folder, generic_corpus(0, 500), seed=0, pretrain_steps=0)
    return str(folder)


def figures(label: str, n_samples: int, out_tokens: int, seconds: float) -> dict:
    return {"path": label, "samples": n_samples, "output_tokens": out_tokens, "seconds": round(seconds, 2),
            "samples_per_s": round(n_samples / seconds, 3), "output_tokens_per_s": round(out_tokens / seconds, 1)}


def raw_vllm(backend: VLLMBackend, problems, args, sampling: SamplingConfig) -> dict:
    from vllm import SamplingParams

    tok = backend.tokenizer
    prompts = [tok.apply_chat_template(problem_messages(p, args.prompt_id), tokenize=False, add_generation_prompt=True)
               for p in problems]
    params = SamplingParams(n=args.n, temperature=sampling.temperature, top_p=sampling.top_p,
                            max_tokens=sampling.max_new_tokens, seed=sampling.seed)
    started = time.perf_counter()
    outputs = backend.llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - started
    out_tokens = sum(len(o.token_ids) for r in outputs for o in r.outputs)
    return figures("raw vllm LLM.generate", len(problems) * args.n, out_tokens, seconds)


def raw_transformers(backend: TransformersBackend, problems, args, sampling: SamplingConfig) -> dict:
    """`model.generate` on left-padded batches, no bookkeeping: the floor our path adds to."""
    import torch

    tok, model = backend.tokenizer, backend.model
    tok.padding_side = "left"
    rows = [tok.apply_chat_template(problem_messages(p, args.prompt_id), tokenize=False, add_generation_prompt=True)
            for p in problems for _ in range(args.n)]
    out_tokens = 0
    started = time.perf_counter()
    for i in range(0, len(rows), args.batch_size):
        enc = tok(rows[i:i + args.batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p,
                                 top_k=None, max_new_tokens=sampling.max_new_tokens, pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        out_tokens += int((new != tok.pad_token_id).sum())
    seconds = time.perf_counter() - started
    return figures("raw transformers model.generate", len(rows), out_tokens, seconds)


def ours(backend, problems, args, sampling: SamplingConfig) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = generate_samples(backend, problems, n=args.n, out_path=Path(tmp) / "samples.jsonl",
                                  chunk_size=args.chunk_size, prompt_id=args.prompt_id, sampling=sampling)
    result = figures(f"valley generate_samples ({backend.name})", report.n_generated, report.completion_tokens,
                     report.elapsed_s)
    result["finish_reasons"] = report.finish_reasons
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["vllm", "transformers"], required=True)
    parser.add_argument("--model", required=True, help="hub id / folder, or 'demo-tiny' (transformers only)")
    parser.add_argument("--problems", default="demo")
    parser.add_argument("--num-problems", type=int, default=36)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=320)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--chunk-size", type=int, default=36)
    parser.add_argument("--batch-size", type=int, default=8, help="transformers rows per generate call")
    parser.add_argument("--prompt-id", default="lcb-reasoning")
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (transformers only)")
    args = parser.parse_args()

    problems = load_problems(args.problems, args.num_problems)
    sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    machine = {"machine": platform.machine(), "processor": platform.processor() or platform.platform()}
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "vllm":
            backend = VLLMBackend(args.model, tensor_parallel_size=args.tensor_parallel_size,
                                  max_model_len=args.max_model_len)
            import torch

            machine["gpu"] = torch.cuda.get_device_name(0)
            raw_vllm(backend, problems[:4], args, sampling)  # warm-up (CUDA graphs, allocator)
            results = [raw_vllm(backend, problems, args, sampling), ours(backend, problems, args, sampling)]
        else:
            import torch

            model = build_demo_tiny(Path(tmp) / "tiny") if args.model == "demo-tiny" else args.model
            backend = TransformersBackend.from_pretrained(model, batch_size=args.batch_size, dtype="float32",
                                                          num_threads=args.threads)
            machine["torch_threads"] = torch.get_num_threads()
            ours(backend, problems[:2], args, sampling)  # warm-up
            results = [raw_transformers(backend, problems, args, sampling), ours(backend, problems, args, sampling)]
    for r in results:
        print(json.dumps({**r, "problems": len(problems), "n": args.n, "max_new_tokens": args.max_new_tokens,
                          "model": args.model, **machine}))


if __name__ == "__main__":
    main()
