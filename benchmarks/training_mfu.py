"""Training throughput and bf16 MFU of the SFT step, with and without packing (GPU only).

Model: the Qwen2-0.5B architecture (config only, random init; no download). Data: random token sequences with
lengths drawn like R1 traces (log-uniform 1K..8K tokens). Two layouts at the same token budget per step:
  padded  - batch of examples right-padded to the longest (attention over padding is wasted work)
  packed  - the same examples flattened into 8K rows, position_ids restarting per example (TRL padding-free/bfd)
MFU = achieved model FLOPs / peak bf16 FLOPs, with model FLOPs = 6 * params * useful tokens + attention
(12 * layers * hidden * sum(len^2)/2 ... counted per example, causal). Peak defaults to H100 SXM dense bf16 (989 TF).

    python benchmarks/training_mfu.py --steps 20 --peak-tflops 989
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time

import torch


def qwen2_05b_config():
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True,
    )


def example_lengths(n: int, lo: int, hi: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [int(math.exp(rng.uniform(math.log(lo), math.log(hi)))) for _ in range(n)]


def model_flops(n_params: int, config, lengths: list[int]) -> float:
    dense = 6 * n_params * sum(lengths)
    attention = 6 * 2 * config.num_hidden_layers * config.hidden_size * sum(l * l / 2 for l in lengths)
    return dense + attention


def padded_batches(lengths, batch, vocab, device):
    for i in range(0, len(lengths), batch):
        chunk = lengths[i:i + batch]
        longest = max(chunk)
        ids = torch.randint(0, vocab, (len(chunk), longest), device=device)
        mask = torch.zeros_like(ids)
        for row, n in enumerate(chunk):
            mask[row, :n] = 1
        labels = ids.masked_fill(mask == 0, -100)
        yield chunk, {"input_ids": ids, "attention_mask": mask, "labels": labels}


def packed_batches(lengths, row_tokens, vocab, device):
    rows, current = [], []
    for n in sorted(lengths, reverse=True):  # best-fit decreasing, as TRL's bfd
        for r in rows:
            if sum(r) + n <= row_tokens:
                r.append(n)
                break
        else:
            rows.append([n])
    for r in rows:
        ids = torch.randint(0, vocab, (1, sum(r)), device=device)
        pos = torch.cat([torch.arange(n, device=device) for n in r]).unsqueeze(0)
        labels = ids.clone()
        labels[pos == 0] = -100
        yield r, {"input_ids": ids, "position_ids": pos, "labels": labels}


def run(layout: str, args) -> dict:
    from transformers import AutoModelForCausalLM

    config = qwen2_05b_config()
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation=args.attn).cuda()
    model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    n_params = sum(p.numel() for p in model.parameters())
    lengths = example_lengths(args.examples, 1024, args.max_length, seed=0)
    make = (lambda: padded_batches(lengths, args.batch, config.vocab_size, "cuda")) if layout == "padded" else (
        lambda: packed_batches(lengths, args.max_length, config.vocab_size, "cuda"))
    # warm-up
    for _, batch in zip(range(2), make()):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    tokens = flops = 0.0
    computed = 0
    start = time.perf_counter()
    for step, (chunk, batch) in enumerate(make()):
        if step >= args.steps:
            break
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += sum(chunk)
        computed += batch["input_ids"].numel()
        flops += model_flops(n_params, config, chunk)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return {
        "layout": layout, "attn": args.attn, "useful_tokens_per_s": tokens / elapsed,
        "padding_fraction": 1 - tokens / computed, "mfu": flops / elapsed / (args.peak_tflops * 1e12),
        "steps": args.steps, "gpu": torch.cuda.get_device_name(0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--batch", type=int, default=4, help="examples per padded batch")
    parser.add_argument("--max-length", type=int, default=8192, help="packed row length and longest example")
    parser.add_argument("--attn", default="flash_attention_2", help="flash_attention_2 (packing needs it) or sdpa")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("training_mfu.py needs a CUDA GPU; CPU numbers are not a substitute")
    for layout in ("padded", "packed"):
        print(json.dumps(run(layout, args)), flush=True)


if __name__ == "__main__":
    main()
