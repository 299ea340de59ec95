"""One-command GPU check: the real Qwen2.5-7B architecture through the SFT and generation entrypoints (no hub access).

For the day a GPU machine is lent (one H100/H200, under 10 minutes):

    python benchmarks/gpu_check.py                     # full size, on the GPU
    python benchmarks/gpu_check.py --tiny              # CPU smoke test of the same steps (a 2-layer model)

1. Builds a random-weight model from `benchmarks/configs/qwen2.5-7b-instruct/config.json` (the public
   Qwen2.5-7B-Instruct config values) with a tokenizer laid out like Qwen2.5's (151,643 byte-level BPE tokens, then
   its 22 added tokens, the hub chat template), saved as a Hugging Face folder.
2. Runs the SFT entrypoint (`python -m valley_assets.training.sft`, one process) for a few optimizer steps with the
   production recipe `qwen2.5-7b-instruct` (bf16, gradient checkpointing, padding-free, its chat template): only the
   global batch, the step count and the checkpoint interval are overridden. Tokens/s and MFU come from its summary.
3. Runs the generation entrypoint (`python -m valley_assets.generation.run`) through vLLM on a handful of
   LiveCodeBench-style problems with the model the SFT run published (so it also checks that vLLM loads what the
   trainer publishes). Without vLLM installed this step is skipped with a message (with --tiny the transformers
   backend runs instead, so the plumbing is still exercised).

Writes a JSON report (--out) and prints the lines to paste into benchmarks/RESULTS.md. MFU = model FLOPs (6 x params
x tokens + causal attention) / (seconds x peak bf16 FLOPs); peak 989 TFLOP/s for H100/H200 SXM unless --peak-tflops.
A few steps include the first step's warm-up, so the figure is a floor, not a tuned number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "benchmarks" / "configs" / "qwen2.5-7b-instruct" / "config.json"
QWEN_REGULAR_TOKENS = 151643  # Qwen2.5's added tokens start at id 151643
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_window_layers": 2}

sys.path.insert(0, str(REPO))


# --- the model folder ---------------------------------------------------------------------------------------------
def qwen_layout_tokenizer():
    """A byte-level BPE with Qwen2.5's vocabulary layout: 151,643 regular tokens (all 256 bytes, every byte pair,
    then byte triples), Qwen's pre-tokenizer split, its 22 added tokens at ids 151643..151664 and its chat template."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_chat_template

    from tests.rehearsal.students import QWEN2_SPLIT, QWEN_ADDED_TOKENS

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    merges = []
    for a in alphabet:
        for b in alphabet:
            merges.append((a, b))
            vocab[a + b] = len(vocab)
    for pair in list(vocab)[len(alphabet):]:
        for c in alphabet:
            if len(vocab) >= QWEN_REGULAR_TOKENS:
                break
            merges.append((pair, c))
            vocab[pair + c] = len(vocab)
        if len(vocab) >= QWEN_REGULAR_TOKENS:
            break
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_tokens([AddedToken(text, special=special, normalized=False) for text, special in QWEN_ADDED_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None,
        additional_special_tokens=[t for t, special in QWEN_ADDED_TOKENS if special and t != "<|endoftext|>"],
        model_max_length=131072, clean_up_tokenization_spaces=False,
    )
    fast.chat_template = qwen2_5_chat_template
    assert fast.convert_tokens_to_ids("<|endoftext|>") == QWEN_REGULAR_TOKENS
    return fast


def build_model_folder(out: Path, tiny: bool, device: str) -> tuple[Path, int, dict]:
    """Random-weight model of the config (shrunk with --tiny) + tokenizer, saved to `out`; (folder, params, config)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    raw = json.loads(CONFIG.read_text())
    if tiny:
        raw.update(TINY)
    config = Qwen2Config(**{k: v for k, v in raw.items() if k not in ("architectures", "torch_dtype")}, dtype="bfloat16")
    config.architectures = ["Qwen2ForCausalLM"]
    tokenizer = qwen_layout_tokenizer()
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    GenerationConfig(bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643).save_pretrained(out)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out, n_params, raw


# --- data ---------------------------------------------------------------------------------------------------------
def write_train_file(path: Path, problems: list[dict], examples: int, trace_tokens: int, tokenizer) -> list[int]:
    """SFT rows shaped like the study's (LCB prompt, R1-style trace) with traces of about `trace_tokens` tokens."""
    from tests.rehearsal.students import CORPUS
    from valley_assets.generation.prompts import build_messages

    filler = " ".join(CORPUS)
    per_filler = len(tokenizer(filler, add_special_tokens=False)["input_ids"])
    lengths = []
    with path.open("w") as fh:
        for i in range(examples):
            problem = problems[i % len(problems)]
            repeats = max(1, trace_tokens // per_filler)
            trace = "<think>\n" + "\n".join([filler] * repeats) + "\n</think>\n```python\nprint(0)\n```"
            messages = [*build_messages(problem["question_content"], problem["starter_code"]),
                        {"role": "assistant", "content": trace}]
            lengths.append(len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]))
            fh.write(json.dumps({"messages": messages}) + "\n")
    return lengths


def model_flops(n_params: int, config: dict, tokens_per_example: list[int]) -> float:
    """Training FLOPs of one pass over these examples: 6 x params x tokens + causal attention (fwd + bwd)."""
    layers, hidden = config["num_hidden_layers"], config["hidden_size"]
    dense = 6 * n_params * sum(tokens_per_example)
    attention = 6 * 2 * layers * hidden * sum(n * n / 2 for n in tokens_per_example)
    return dense + attention


def peak_flops(device_name: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in device_name:
            return tflops * 1e12
    return None


# --- the two entrypoints --------------------------------------------------------------------------------------------
def run_entrypoint(module: str, params: dict, workdir: Path, env: dict, timeout_s: int) -> tuple[str, float]:
    params_file = workdir / f"{module.rsplit('.', 1)[-1]}-params.json"
    params_file.write_text(json.dumps(params))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", module, "--params", str(params_file)], cwd=REPO, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=timeout_s)
    (workdir / f"{module.rsplit('.', 1)[-1]}.log").write_text(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{module} failed (exit {proc.returncode}); last lines:\n{proc.stderr[-4000:]}")
    return proc.stdout, time.monotonic() - started


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="2-layer model on CPU: a smoke test of every step")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: $TMPDIR/valley-gpu-check[-tiny])")
    parser.add_argument("--out", default=None, help="JSON report (default: <workdir>/gpu_check.json)")
    parser.add_argument("--sft-steps", type=int, default=None, help="optimizer steps (default 3; tiny 2)")
    parser.add_argument("--global-batch", type=int, default=None, help="examples per step (default 8; tiny 2)")
    parser.add_argument("--trace-tokens", type=int, default=None, help="tokens per trace (default 8192; tiny 200)")
    parser.add_argument("--problems", type=int, default=8, help="LCB-style problems to generate for")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="per sample (default 2048; tiny 32)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s of the device")
    args = parser.parse_args(argv)

    import torch

    tiny = args.tiny
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if not tiny and device != "cuda":
        raise SystemExit("no GPU here: the full-size check needs one (use --tiny for the CPU smoke test)")
    steps = args.sft_steps or (2 if tiny else 3)
    global_batch = args.global_batch or (2 if tiny else 8)
    trace_tokens = args.trace_tokens or (200 if tiny else 8192)
    max_new_tokens = args.max_new_tokens or (32 if tiny else 2048)
    default_workdir = Path(tempfile.gettempdir()) / ("valley-gpu-check-tiny" if tiny else "valley-gpu-check")
    workdir = Path(args.workdir or default_workdir).resolve()  # ~45 GB at full size: base, published model, samples
    workdir.mkdir(parents=True, exist_ok=True)
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
    report: dict = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "device": device_name,
                    "tiny": tiny, "torch": torch.__version__, "config": str(CONFIG.relative_to(REPO))}
    t0 = time.monotonic()

    print(f"[1/3] building the {'tiny' if tiny else 'Qwen2.5-7B'} random-weight model in {workdir / 'base'}", flush=True)
    base, n_params, config = build_model_folder(workdir / "base", tiny, device)
    report["params"] = n_params
    report["build_s"] = round(time.monotonic() - t0, 1)

    from transformers import AutoTokenizer

    from valley_assets.demo.problems import make_demo_problems

    _, problems = make_demo_problems(seed=0, n_train=0, n_eval=max(args.problems, 1))
    problems_file = workdir / "problems.jsonl"
    problems_file.write_text("".join(json.dumps(p) + "\n" for p in problems))
    tokenizer = AutoTokenizer.from_pretrained(base)
    train_file = workdir / "train.jsonl"
    lengths = write_train_file(train_file, problems, steps * global_batch, trace_tokens, tokenizer)

    print(f"[2/3] SFT entrypoint: {steps} steps x {global_batch} examples of ~{sum(lengths) // len(lengths)} tokens, "
          "production recipe qwen2.5-7b-instruct", flush=True)
    sft_out = workdir / "sft"
    overrides = {"global_batch_size": global_batch, "max_steps": steps, "save_steps": 10 ** 9}
    if tiny:
        overrides["dataset_num_proc"] = None
    stdout, sft_wall = run_entrypoint("valley_assets.training.sft", {
        "recipe": {"base": "qwen2.5-7b-instruct", **overrides}, "train_file": str(train_file),
        "base_model": str(base), "output_dir": str(sft_out), "resume_from_checkpoint": None,
    }, workdir, {}, timeout_s=3600)
    line = [text for text in stdout.splitlines() if text.startswith('{"valley_result"')][-1]
    sft = json.loads(line)["valley_result"]
    seconds = sft["train_runtime_s"]
    tokens = sft["tokens_seen"]
    trained_lengths = lengths[: steps * global_batch]
    peak = peak_flops(device_name, args.peak_tflops)
    report["sft"] = {
        "steps": sft["steps"], "global_batch": global_batch, "tokens": tokens, "train_runtime_s": seconds,
        "wall_s": round(sft_wall, 1), "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
        "mfu": round(model_flops(n_params, config, trained_lengths) / seconds / peak, 4) if (peak and seconds) else None,
        "final_loss": sft["final_loss"], "precision": sft["precision"], "fsdp": sft.get("fsdp"),
        "gradient_checkpointing": True, "mean_example_tokens": round(sum(trained_lengths) / len(trained_lengths)),
    }

    backend = "vllm" if vllm_available() else ("transformers" if tiny else None)
    if backend is None:
        print("[3/3] vLLM is not installed here: generation through vLLM skipped (pip install 'valley[gpu]')",
              flush=True)
        report["generation"] = {"skipped": "vllm not installed"}
    else:
        if backend != "vllm":
            print("[3/3] vLLM is not installed: the generation entrypoint runs with the transformers backend instead "
                  "(tiny smoke test only)", flush=True)
        else:
            print(f"[3/3] generation entrypoint through vLLM on {len(problems)} problems", flush=True)
        options = ({"max_model_len": 8192 + max_new_tokens, "dtype": "bfloat16", "gpu_memory_utilization": 0.85}
                   if backend == "vllm" else {"batch_size": 4})
        stdout, gen_wall = run_entrypoint("valley_assets.generation.run", {
            "model_path": str(sft_out), "problems_path": str(problems_file),
            "out_path": str(workdir / f"samples-{backend}.jsonl"), "backend": backend, "n": 1,
            "chunk_size": len(problems), "sampling": {"temperature": 0.6, "top_p": 0.95,
                                                      "max_new_tokens": max_new_tokens},
            "backend_options": options,
        }, workdir, {}, timeout_s=1800)
        gen = json.loads([text for text in stdout.splitlines() if text.startswith('{"valley_result"')][-1])[
            "valley_result"]
        report["generation"] = {"backend": backend, "problems": len(problems), "wall_s": round(gen_wall, 1),
                                **{k: gen[k] for k in ("output_tokens_per_s", "samples_per_s", "finish_reasons")
                                   if k in gen}}
    report["total_s"] = round(time.monotonic() - t0, 1)

    out = Path(args.out) if args.out else workdir / "gpu_check.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    day = report["when"][:10]
    s = report["sft"]
    print("\nLines for benchmarks/RESULTS.md:")
    print(f"| {day} | {device_name} | `python benchmarks/gpu_check.py{' --tiny' if tiny else ''}` | SFT "
          f"{'tiny' if tiny else 'Qwen2.5-7B'} ({n_params / 1e9:.2f}B params), {s['steps']} steps x {global_batch} x "
          f"~{s['mean_example_tokens']} tokens, bf16, grad ckpt | **{s['tokens_per_s']} tokens/s**, MFU "
          f"**{s['mfu'] if s['mfu'] is not None else 'n/a'}** |")
    g = report["generation"]
    if "skipped" in g:
        print(f"| {day} | {device_name} | generation through vLLM | skipped: {g['skipped']} |")
    else:
        print(f"| {day} | {device_name} | generation ({g['backend']}), {g['problems']} problems, n=1, "
              f"max_new_tokens {max_new_tokens} | **{g.get('output_tokens_per_s')} output tokens/s**, "
              f"{g.get('samples_per_s')} samples/s |")
    print(f"(total {report['total_s']} s; report {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
