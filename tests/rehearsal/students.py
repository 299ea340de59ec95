"""Two tiny students in the real chat-template families, built offline as Hugging Face model folders.

The rehearsal trains and evaluates the production code paths on CPU, so the students must be small (about 0.1M
parameters, a 2-layer model) yet look to the code exactly like the hub students it meets in production:

- `qwen2.5-7b-instruct`: a `Qwen2ForCausalLM` whose tokenizer has Qwen2.5-Instruct's chat template and special tokens
  (`<|endoftext|>` pad/bos, `<|im_start|>`, `<|im_end|>` eos, the vision / tool / FIM added tokens), untied head like
  the 7B, generation EOS ids [<|im_end|>, <|endoftext|>].
- `llama3.1-8b-instruct`: a `LlamaForCausalLM` with Llama-3.1-Instruct's template and special tokens
  (`<|begin_of_text|>` bos added by the post-processor, `<|eot_id|>` eos, `<|start_header_id|>`,
  `<|end_header_id|>`, `<|eom_id|>`, `<|python_tag|>`, `<|finetune_right_pad_id|>`, reserved tokens), no pad token,
  llama3 rope scaling, config EOS ids [<|end_of_text|>, <|eom_id|>, <|eot_id|>].

The template texts are the hub templates byte for byte, taken from TRL, which keeps them to recognise these models
by exact comparison (`trl/chat_templates/qwen2_5.jinja`, `llama3_1.jinja`); so the project's template handling
(`valley_assets.training.chat_template`) takes the same branch it takes for the real students. The tokenizers are
byte-level BPE trained here on a little English and code (the same pre-tokenizer split as the real ones), with the
special tokens appended after the learned vocabulary as in the real vocabularies. Weights are random (seeded).
"""

from __future__ import annotations

import json
from pathlib import Path

QWEN = "qwen2.5-7b-instruct"
LLAMA = "llama3.1-8b-instruct"
_DONE = ".students-complete"

# The pre-tokenizer split of Qwen2 (tokenizer.json) and Llama 3 (digits in groups of up to 3).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Qwen2.5-Instruct's added tokens in vocabulary order (ids 151643...); `special` as in its tokenizer.json.
QWEN_ADDED_TOKENS = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
    ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False),
]
# Llama 3.1's first special tokens in vocabulary order (ids 128000...); the real vocabulary continues with
# <|reserved_special_token_3..247|>, of which a few are kept here.
LLAMA_ADDED_TOKENS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", *[f"<|reserved_special_token_{i}|>" for i in range(3, 8)],
]

CORPUS = [
    "You are a careful programmer. Read the problem, think step by step, then write a Python program.",
    "Given an array of n integers, print the maximum sum of a contiguous subarray.",
    "The first line contains an integer t, the number of test cases. Each test case has two integers a and b.",
    "<think>\nWe need the sum of the two numbers. Read them, add them, print the result.\n</think>\n",
    "```python\nimport sys\n\ndef main():\n    data = sys.stdin.read().split()\n    t = int(data[0])\n"
    "    for i in range(t):\n        a, b = int(data[1 + 2 * i]), int(data[2 + 2 * i])\n        print(a + b)\n\n"
    "main()\n```",
    "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        seen = {}\n"
    "        for i, x in enumerate(nums):\n            if target - x in seen:\n                return [seen[target - x], i]\n"
    "            seen[x] = i\n",
    "Output a single line with the answer modulo 10^9 + 7. Note that the string s consists of lowercase letters.",
    "for (int i = 0; i < n; ++i) { dp[i + 1] = max(dp[i], dp[i] + a[i]); } return dp[n];",
    "Example input: 3 4 5. Example output: 12. Explanation: the perimeter of the triangle is 3 + 4 + 5 = 12.",
    "def solve(n, edges):\n    graph = [[] for _ in range(n)]\n    for u, v in edges:\n        graph[u].append(v)\n"
    "        graph[v].append(u)\n    return graph\n",
    "Wait, that is not right. Let me check the constraints again: n can be up to 2 * 10^5, so O(n log n) is fine.",
]


def _train_bpe(split_pattern: str, vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    return tok


def build_qwen_tokenizer():
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_chat_template

    tok = _train_bpe(QWEN2_SPLIT, vocab_size=480)
    tok.add_tokens([AddedToken(text, special=special, normalized=False) for text, special in QWEN_ADDED_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None,
        additional_special_tokens=[t for t, special in QWEN_ADDED_TOKENS if special and t not in (
            "<|endoftext|>",)],
        model_max_length=131072, clean_up_tokenization_spaces=False, split_special_tokens=False,
    )
    fast.chat_template = qwen2_5_chat_template
    return fast


def build_llama_tokenizer():
    from tokenizers import AddedToken, processors
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import llama3_1_chat_template

    tok = _train_bpe(LLAMA3_SPLIT, vocab_size=480)
    tok.add_tokens([AddedToken(text, special=True, normalized=False) for text in LLAMA_ADDED_TOKENS])
    bos_id = tok.token_to_id("<|begin_of_text|>")
    # Llama 3's tokenizer.json prepends <|begin_of_text|> to every encoded text; apply_chat_template encodes with
    # add_special_tokens=False because the template writes bos_token itself.
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
        model_max_length=131072, clean_up_tokenization_spaces=False,
    )
    fast.chat_template = llama3_1_chat_template
    return fast


def _save(model, tokenizer, generation_config, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    generation_config.save_pretrained(out_dir)
    return out_dir


def build_qwen_student(out_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_qwen_tokenizer()
    endoftext, im_end = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False, use_sliding_window=False, bos_token_id=endoftext, eos_token_id=im_end,
        pad_token_id=endoftext, dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    generation = GenerationConfig(bos_token_id=endoftext, eos_token_id=[im_end, endoftext], pad_token_id=endoftext)
    return _save(model, tokenizer, generation, out_dir)


def build_llama_student(out_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_llama_tokenizer()
    bos, end_of_text, eom, eot = tokenizer.convert_tokens_to_ids(
        ["<|begin_of_text|>", "<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"]
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        bos_token_id=bos, eos_token_id=[end_of_text, eom, eot], dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    generation = GenerationConfig(bos_token_id=bos, eos_token_id=[end_of_text, eom, eot])
    return _save(model, tokenizer, generation, out_dir)


def write_tiny_students(root: Path) -> dict[str, Path]:
    """Build (or reuse, when already complete) both students under `root`; returns {student name: model folder}."""
    root = Path(root)
    folders = {QWEN: root / QWEN, LLAMA: root / LLAMA}
    builders = {QWEN: build_qwen_student, LLAMA: build_llama_student}
    for name, folder in folders.items():
        if (folder / _DONE).is_file():
            continue
        builders[name](folder)
        (folder / _DONE).write_text(json.dumps({"student": name}))
    return folders
