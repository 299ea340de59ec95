"""The demo's student: a byte-level BPE tokenizer and a tiny Qwen2 causal LM, pre-trained briefly on generic text.

Everything is saved with `save_pretrained`, so the rest of the study loads it with `AutoTokenizer.from_pretrained` /
`AutoModelForCausalLM.from_pretrained(folder)`: the same code path production uses with hub ids.

The tokenizer follows Qwen2: the Qwen2 pre-tokenizer regex (digits split one by one, which helps a small model copy
numbers from a statement), byte-level BPE, `<|endoftext|>` / `<|im_start|>` / `<|im_end|>` as special tokens,
`<think>` / `</think>` as ordinary added tokens (kept when decoding with `skip_special_tokens=True`, as with Qwen3 and
R1 distills), and a ChatML template whose assistant content sits inside `{% generation %}` markers so that
`apply_chat_template(..., return_assistant_tokens_mask=True)` (TRL's `assistant_only_loss`) masks exactly the
assistant's reply and its `<|im_end|>`.

The base model stands in for an instruct model: it is pre-trained on project-made generic text (English sentences,
arithmetic, python snippets, short ChatML exchanges) and on direct answers (a fenced solution, no reasoning) to
training-side demo problems of the easy families, in every LiveCodeBench prompt style. It never sees a teacher
trace, a `<think>` answer or an evaluation problem, so the `0` data size is a real "before distillation" point that
already answers some easy problems directly. Chats are learnt on their answer turn only, and no pre-training
document is cut across rows.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import torch

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
THINK_TOKENS = ("<think>", "</think>")
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# Qwen2's pre-tokenizer split (tokenizer.json of Qwen2/Qwen2.5).
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


# ChatML as in Qwen2.5, with TRL's generation markers around what the assistant writes (content and <|im_end|>).
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' or (message['role'] == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


# --------------------------------------------------------------------------------------------------------------------
# Generic text made by the project (pre-training data; also part of the tokenizer's training corpus).
# --------------------------------------------------------------------------------------------------------------------

_SUBJECTS = ("The cat", "A student", "My friend", "The old man", "Our team", "The computer", "This program",
             "The teacher", "A small robot", "Every player", "The river", "She", "He", "They", "The baker")
_VERBS = ("reads", "writes", "finds", "counts", "sorts", "prints", "checks", "builds", "opens", "moves", "paints",
          "carries", "watches", "fixes", "measures")
_OBJECTS = ("a book", "the list", "every number", "the answer", "a short story", "the largest value", "two strings",
            "the red door", "a long table", "the whole grid", "three apples", "the last line", "a new idea")
_TAILS = ("in the morning.", "before lunch.", "very quickly.", "step by step.", "without any help.",
          "again and again.", "with great care.", "at the end of the day.", "for the first time.", ".")
_NAMES = ("x", "y", "n", "k", "total", "count", "value", "items", "data", "result", "nums", "words", "s", "best")
_FUNCS = ("solve", "helper", "compute", "process", "check", "build", "main", "update", "score", "transform")


def _sentence(rng: random.Random) -> str:
    tail = rng.choice(_TAILS)
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}" + ("." if tail == "." else f" {tail}")


def _arithmetic(rng: random.Random) -> str:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return rng.choice([f"{a} + {b} = {a + b}.", f"{a} times {b} is {a * b}.", f"The difference of {a} and {b} is "
                       f"{a - b}.", f"{max(a, b)} is larger than {min(a, b)}." if a != b else f"{a} equals {b}."])


def _python_snippet(rng: random.Random) -> str:
    v, w = rng.sample(_NAMES, 2)
    f = rng.choice(_FUNCS)
    k = rng.randint(1, 9)
    templates = [
        f"def {f}({v}):\n    return {v} * {k}\n\nprint({f}({rng.randint(0, 20)}))",
        f"{v} = int(input())\n{w} = 0\nfor i in range({v}):\n    {w} += i\nprint({w})",
        f"{v} = list(map(int, input().split()))\nprint(sum({v}))",
        f"{v} = [i * i for i in range({k + 2})]\nprint({v})",
        f"{v} = {rng.randint(0, 50)}\nif {v} % {k + 1} == 0:\n    print('yes')\nelse:\n    print('no')",
        f"{v} = input().strip()\nprint(len({v}))",
        f"{v} = {k}\nwhile {v} > 0:\n    print({v})\n    {v} -= 1",
        f"class {f.capitalize()}:\n    def __init__(self, {v}):\n        self.{v} = {v}\n\n"
        f"    def get(self):\n        return self.{v}",
        f"def {f}({v}, {w}):\n    if {v} > {w}:\n        return {v}\n    return {w}",
        f"{v} = {{}}\nfor {w} in ['a', 'b', 'a']:\n    {v}[{w}] = {v}.get({w}, 0) + 1\nprint({v})",
    ]
    return rng.choice(templates)


def _chat(rng: random.Random) -> str:
    a, b = rng.randint(0, 50), rng.randint(0, 50)
    user, reply = rng.choice([
        (f"What is {a} + {b}?", f"{a} + {b} = {a + b}."),
        ("Write a sentence about a cat.", _sentence(rng)),
        (f"Write python code that prints the numbers from 1 to {a % 9 + 1}.",
         f"```python\nfor i in range(1, {a % 9 + 2}):\n    print(i)\n```"),
        ("Show me a small python function.", f"```python\n{_python_snippet(rng)}\n```"),
        (f"Is {a} even?", "Yes." if a % 2 == 0 else "No."),
    ])
    return (f"{IM_START}system\n{DEFAULT_SYSTEM_PROMPT}{IM_END}\n{IM_START}user\n{user}{IM_END}\n"
            f"{IM_START}assistant\n{reply}{IM_END}\n")


def generic_corpus(seed: int, n: int) -> list[str]:
    """`n` generic documents (paragraphs, arithmetic, python snippets, short chats), deterministic for a seed."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"valley-demo-generic|{seed}")
    makers = (lambda: " ".join(_sentence(rng) for _ in range(rng.randint(2, 5))),
              lambda: " ".join(_arithmetic(rng) for _ in range(rng.randint(2, 4))),
              lambda: _python_snippet(rng),
              lambda: _chat(rng))
    return [makers[i % len(makers)]() for i in range(n)]


def render_chatml(messages: list[dict]) -> str:
    """A conversation as `CHAT_TEMPLATE` renders it (default system turn when there is none), as plain text, so
    pre-training documents can be written before the tokenizer that carries the template exists."""
    out = []
    if messages[0]["role"] != "system":
        out.append(f"{IM_START}system\n{DEFAULT_SYSTEM_PROMPT}{IM_END}\n")
    for m in messages:
        if m["role"] == "assistant":
            out.append(f"{IM_START}assistant\n{m['content']}{IM_END}\n")
        else:
            out.append(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n")
    return "".join(out)


# The prompt styles a direct-solution chat is asked in: every LiveCodeBench style the study registers, the reasoning
# one included, so the base student answers the evaluation prompt directly, as an instruct model does.
DIRECT_PROMPT_IDS = ("lcb-reasoning", "lcb-chat", "lcb-codeqwen")


def direct_solution_chats(problems: list[dict], prompt_ids: tuple[str, ...] = DIRECT_PROMPT_IDS) -> list[str]:
    """One chat per problem: an LCB prompt (styles in rotation) answered directly with the reference solution in a
    fenced block, no reasoning: what an instruct model's fine-tuning data looks like."""
    from valley_assets.demo.problems import reference_solutions
    from valley_assets.generation.prompts import problem_messages

    chats = []
    for i, (problem, solution) in enumerate(zip(problems, reference_solutions(problems), strict=True)):
        messages = problem_messages(problem, prompt_ids[i % len(prompt_ids)])
        answer = f"```python\n{solution}\n```"
        chats.append(render_chatml([*messages, {"role": "assistant", "content": answer}]))
    return chats


# The base student's pre-training (the demo's stand-in for an instruct model): generic documents, plus direct answers
# to the training-side problems the teacher labels EASY, as an instruct model already solves easy problems. Harder
# families are learnt from the teacher's traces only.
PRETRAIN_GENERIC_DOCS = 1000
PRETRAIN_DIRECT_PROBLEMS = 720
PRETRAIN_DIRECT_DIFFICULTIES = ("EASY",)


def demo_pretraining_texts(seed: int, *, n_generic: int, n_direct: int,
                           direct_difficulties: tuple[str, ...] | None = None) -> list[str]:
    """The base student's pre-training documents: `n_generic` generic documents and the direct-solution chats of the
    first `n_direct` training-side demo problems (`make_demo_problems(seed, n_direct, 0)`, so never an evaluation
    problem: those have parameters no training-side problem has), optionally only those whose TACO difficulty is in
    `direct_difficulties`; shuffled together with a seeded order."""
    from valley_assets.demo.problems import make_demo_problems, taco_difficulty

    direct = make_demo_problems(seed, n_direct, 0)[0] if n_direct else []
    if direct_difficulties is not None:
        direct = [p for p in direct if taco_difficulty(p) in direct_difficulties]
    texts = generic_corpus(seed + 1, n_generic) + direct_solution_chats(direct)
    random.Random(f"valley-demo-pretrain|{seed}").shuffle(texts)
    return texts


# --------------------------------------------------------------------------------------------------------------------
# Tokenizer.
# --------------------------------------------------------------------------------------------------------------------


def train_tokenizer(texts: list[str], vocab_size: int, model_max_length: int = 2048):
    """A byte-level BPE trained on `texts`, wrapped as a `PreTrainedTokenizerFast` with Qwen2's specials.

    The pre-tokenizer must be Qwen2's own: transformers 5 loads the tokenizer of any `qwen2` model folder as
    `Qwen2Tokenizer`, which rebuilds Qwen2's pre-tokenizer whatever tokenizer.json says, so a tokenizer trained with
    another split (phrase-level merges across spaces were tried: 3x shorter sequences) would be trained on one
    tokenization and evaluated on another (measured: word salad)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise ValueError("the tokenizer corpus is empty")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[ENDOFTEXT, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False, max_token_length=64,
    )
    tok.train_from_iterator(texts, trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=ENDOFTEXT, chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length, clean_up_tokenization_spaces=False,
    )


# --------------------------------------------------------------------------------------------------------------------
# Model and pre-training.
# --------------------------------------------------------------------------------------------------------------------


def tiny_qwen2_config(tokenizer, hidden_size: int, num_layers: int, num_heads: int, num_kv_heads: int,
                      intermediate_size: int, max_position_embeddings: int):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None, use_cache=True,
    )


ASSISTANT_TURN = f"{IM_START}assistant\n"


def _document_tokens(tokenizer, text: str) -> tuple[list[int], list[int]]:
    """(ids, labels) of one pre-training document ended by <|endoftext|>. A chat is learnt as instruction tuning
    is: the loss covers the last assistant turn only (its prompt is context), so the little compute the demo has
    goes into answering, not into predicting statements and random sample inputs; other documents are learnt
    whole. Prompt and answer are tokenized apart; that equals tokenizing the whole chat because the role line ends
    in a newline, a pre-token of its own under Qwen2's split."""
    pad = tokenizer.pad_token_id
    cut = text.rfind(ASSISTANT_TURN)
    prompt, answer = (text[:cut + len(ASSISTANT_TURN)], text[cut + len(ASSISTANT_TURN):]) if cut != -1 else ("", text)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    answer_ids = [*tokenizer(answer, add_special_tokens=False)["input_ids"], pad]
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def _token_blocks(tokenizer, texts: list[str], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, labels), rows of seq_len tokens holding whole documents packed in order (`_document_tokens`); a row's
    unused tail is <|endoftext|> padding left out of the loss (-100). A document is never cut in two (a
    direct-solution chat split across rows would teach code without its statement); one longer than a row is cut
    into row-sized pieces."""
    pad = tokenizer.pad_token_id
    rows: list[tuple[list[int], list[int]]] = []
    ids: list[int] = []
    labels: list[int] = []
    for text in texts:
        doc_ids, doc_labels = _document_tokens(tokenizer, text)
        while len(doc_ids) > seq_len:
            if ids:
                rows.append((ids, labels))
                ids, labels = [], []
            rows.append((doc_ids[:seq_len], doc_labels[:seq_len]))
            doc_ids, doc_labels = doc_ids[seq_len:], doc_labels[seq_len:]
        if len(ids) + len(doc_ids) > seq_len:
            rows.append((ids, labels))
            ids, labels = [], []
        ids, labels = ids + doc_ids, labels + doc_labels
    if ids:
        rows.append((ids, labels))
    if len(rows) < 2:
        raise ValueError(f"pre-training text is too short: {sum(len(r) for r, _ in rows)} tokens for rows of "
                         f"{seq_len}")
    return (torch.tensor([r + [pad] * (seq_len - len(r)) for r, _ in rows]),
            torch.tensor([lab + [-100] * (seq_len - len(lab)) for _, lab in rows]))


@torch.no_grad()
def _mean_loss(model, blocks: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    model.eval()
    losses = [model(input_ids=blocks[i:i + batch_size], labels=labels[i:i + batch_size]).loss.item()
              for i in range(0, len(blocks), batch_size)]
    model.train()
    return sum(losses) / len(losses)


def build_tiny_student(
    out_dir: str | Path,
    corpus_texts: list[str],
    seed: int,
    pretrain_steps: int,
    *,
    vocab_size: int = 4096,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 384,
    max_position_embeddings: int = 2048,
    seq_len: int = 512,
    batch_size: int = 4,
    learning_rate: float = 3e-3,
    pretrain_texts: list[str] | None = None,
    num_threads: int = 1,
) -> dict:
    """Train the tokenizer on `corpus_texts` (+ the pre-training text), build a tiny Qwen2, pre-train it for
    `pretrain_steps` on `pretrain_texts` (default: `demo_pretraining_texts` for `seed`, generic text and direct
    solutions of easy training-side problems), and save model, generation config and tokenizer into `out_dir`.

    Returns metadata: n_params, vocab_size, the per-step pre-training loss curve, held-out loss before and after,
    and wall time. `num_threads` applies during the build only: a model this small gains nothing from more
    threads and loses a lot when other work shares the CPU.
    """
    if pretrain_steps < 0:
        raise ValueError(f"pretrain_steps must be >= 0, got {pretrain_steps}")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        return _build(Path(out_dir), list(corpus_texts), seed, pretrain_steps, vocab_size, hidden_size, num_layers,
                      num_heads, num_kv_heads, intermediate_size, max_position_embeddings, seq_len, batch_size,
                      learning_rate, pretrain_texts)
    finally:
        torch.set_num_threads(previous_threads)


def _build(out, corpus_texts, seed, pretrain_steps, vocab_size, hidden_size, num_layers, num_heads, num_kv_heads,
           intermediate_size, max_position_embeddings, seq_len, batch_size, learning_rate, pretrain_texts) -> dict:
    from transformers import GenerationConfig, Qwen2ForCausalLM

    started = time.time()
    if not corpus_texts:
        raise ValueError("corpus_texts is empty: the tokenizer needs the problems and traces it will read")
    random.seed(seed)
    torch.manual_seed(seed)
    if pretrain_texts is None:
        pretrain_texts = demo_pretraining_texts(seed, n_generic=PRETRAIN_GENERIC_DOCS,
                                                n_direct=PRETRAIN_DIRECT_PROBLEMS,
                                                direct_difficulties=PRETRAIN_DIRECT_DIFFICULTIES)
    tokenizer = train_tokenizer(corpus_texts + list(pretrain_texts), vocab_size, max_position_embeddings)
    config = tiny_qwen2_config(tokenizer, hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size,
                               max_position_embeddings)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(ENDOFTEXT)],
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None, do_sample=False,
    )

    blocks, labels = _token_blocks(tokenizer, pretrain_texts, seq_len)
    n_heldout = max(1, len(blocks) // 20)
    heldout, train = (blocks[:n_heldout], labels[:n_heldout]), (blocks[n_heldout:], labels[n_heldout:])
    loss_before = _mean_loss(model, *heldout, batch_size)

    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    warmup = max(1, pretrain_steps // 10)

    def lr_factor(step: int) -> float:  # linear warmup, then cosine decay to 10%
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, pretrain_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    generator = torch.Generator().manual_seed(seed)
    curve = []
    model.train()
    for _step in range(pretrain_steps):
        pick = torch.randint(len(train[0]), (batch_size,), generator=generator)
        loss = model(input_ids=train[0][pick], labels=train[1][pick]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        curve.append(round(loss.item(), 4))
    loss_after = _mean_loss(model, *heldout, batch_size)
    model.eval()

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "n_params": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "architecture": "Qwen2ForCausalLM",
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "pretrain_steps": pretrain_steps,
        "pretrain_tokens": pretrain_steps * batch_size * seq_len,
        "pretrain_loss_curve": curve,
        "heldout_loss_before": round(loss_before, 4),
        "heldout_loss_after": round(loss_after, 4),
        "wall_time_s": round(time.time() - started, 2),
    }
