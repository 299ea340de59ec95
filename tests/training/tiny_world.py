"""A tiny student (Qwen2 architecture, random init) and a few SFT rows, built in seconds for tests.

Uses the demo world's `valley_assets.demo.tiny_model.build_tiny_student` when it is importable (no pre-training, small
sizes); otherwise builds a byte-level BPE tokenizer with a ChatML template carrying `{% generation %}` markers, and a
2-layer Qwen2 here.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CHATML_TRAINING_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>\\n' }}{%- endgeneration %}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        rows.append({"messages": [
            {"role": "system", "content": "You are a careful programmer."},
            {"role": "user", "content": f"Problem {i}: read two integers and print their sum. Example: {a} {b}"},
            {"role": "assistant", "content": (
                f"<think>\nThe input is two integers like {a} and {b}. Read them, add, print {a + b}.\n</think>\n"
                "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
            )},
        ]})
    return rows


def write_train_file(path: Path, n: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in make_rows(n, seed):
            fh.write(json.dumps(row) + "\n")
    return path


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [m["content"] for row in make_rows(200, seed=1) for m in row["messages"]]
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    fast.chat_template = CHATML_TRAINING_TEMPLATE
    return fast


def build_tiny_student(out_dir: Path) -> Path:
    """Save a tokenizer + randomly initialised 2-layer Qwen2 into `out_dir`; return it."""
    try:
        from valley_assets.demo.tiny_model import build_tiny_student as build_demo_student
    except ImportError:
        build_demo_student = None
    if build_demo_student is not None:
        corpus = [m["content"] for row in make_rows(200, seed=1) for m in row["messages"]]
        build_demo_student(out_dir, corpus, seed=0, pretrain_steps=0, vocab_size=400, hidden_size=32, num_layers=2,
                           num_heads=4, num_kv_heads=2, intermediate_size=64)
        return Path(out_dir)
    return _build_local_student(out_dir)


def _build_local_student(out_dir: Path) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    tokenizer = build_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
