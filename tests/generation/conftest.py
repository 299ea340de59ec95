"""A tiny Qwen2 student (random weights) and a real fast tokenizer with a ChatML chat template, built offline.

Prefers the demo world's `build_tiny_student` when it exists; the fallback here builds the same shape of thing so
these tests do not depend on another folder's progress.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_end|>", "<|im_start|>"]  # ids 0, 1, 2


def _corpus() -> list[str]:
    text = (
        "def solve():\n    n = int(input())\n    print(n * 2)\n"
        "### Question: read the inputs from stdin solve the problem and write the answer to stdout "
        "<think> let me think step by step </think> ```python\nclass Solution:\n    pass\n```"
    )
    return [text] * 4


def build_tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(vocab_size: int):
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=1024, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=1, pad_token_id=0,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=[1, 0], pad_token_id=0, bos_token_id=0)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_student_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny_student")
    try:
        from valley_assets.demo.tiny_model import build_tiny_student
    except ImportError:
        build_tiny_student = None
    if build_tiny_student is not None:  # the demo's own student, untrained and small, for speed
        build_tiny_student(path, _corpus(), seed=0, pretrain_steps=0, vocab_size=400, hidden_size=32, num_layers=2,
                           num_heads=2, num_kv_heads=1, intermediate_size=64, max_position_embeddings=1024,
                           pretrain_texts=_corpus() * 8, seq_len=32)
        return path
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(len(tokenizer))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def make_problems():
    return problems_for_tests


def problems_for_tests(k: int) -> list[dict]:
    """Problem records of the architecture's shape; every other one is a functional (starter-code) problem."""
    problems = []
    for i in range(k):
        functional = i % 2 == 1
        problems.append({
            "question_id": f"q{i:03d}",
            "question_title": f"problem {i}",
            "question_content": f"Given n, print n times {i + 2}." + " Details." * (i % 3),
            "platform": "leetcode" if functional else "atcoder",
            "contest_date": f"2024-0{1 + i % 9}-15T00:00:00",
            "starter_code": "class Solution:\n    def f(self, n: int) -> int:\n        " if functional else "",
            "difficulty": ("easy", "medium", "hard")[i % 3],
            "public_test_cases": json.dumps([{"input": "1", "output": str(i + 2), "testtype": "stdin"}]),
            "private_test_cases": "[]",
            "metadata": json.dumps({"func_name": "f"} if functional else {}),
        })
    return problems
