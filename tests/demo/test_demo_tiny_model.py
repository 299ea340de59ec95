"""The tiny student: tokenizer, chat template with think tags, a small Qwen2 that loads with from_pretrained."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

from valley_assets.demo.problems import FAMILIES, make_demo_problems, reference_solution, reference_solutions
from valley_assets.demo.teacher import demo_teacher_traces
from valley_assets.demo.tiny_model import (
    IM_END,
    _token_blocks,
    build_tiny_student,
    demo_pretraining_texts,
    generic_corpus,
    render_chatml,
    train_tokenizer,
)
from valley_assets.generation.prompts import problem_messages

STEPS = 40


@pytest.fixture(scope="module")
def world():
    problems = make_demo_problems(0, 44, 0)[0]
    traces = demo_teacher_traces(problems, seed=0, wrong_fraction=0.3, defect_fraction=0.0)
    return problems, traces


@pytest.fixture(scope="module")
def built(tmp_path_factory, world):
    problems, traces = world
    out = tmp_path_factory.mktemp("tiny")
    corpus = [p["question_content"] for p in problems] + [t["r1_generation"] for t in traces] + generic_corpus(0, 300)
    info = build_tiny_student(out, corpus, seed=0, pretrain_steps=STEPS, pretrain_texts=generic_corpus(1, 800))
    return out, info


@pytest.fixture(scope="module")
def tokenizer(built):
    return AutoTokenizer.from_pretrained(built[0])


@pytest.fixture(scope="module")
def model(built):
    return AutoModelForCausalLM.from_pretrained(built[0])


def test_metadata(built):
    _, info = built
    assert info["n_params"] <= 5_000_000
    assert info["architecture"] == "Qwen2ForCausalLM"
    assert len(info["pretrain_loss_curve"]) == STEPS
    assert info["wall_time_s"] > 0


def test_pretraining_lowers_loss(built):
    _, info = built
    curve = info["pretrain_loss_curve"]
    assert info["heldout_loss_after"] < info["heldout_loss_before"] - 1.0
    assert sum(curve[-5:]) / 5 < sum(curve[:5]) / 5 - 1.0


def test_loads_with_from_pretrained(built, model, tokenizer):
    _, info = built
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == info["n_params"]
    assert model.config.max_position_embeddings >= 2048
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    assert len(tokenizer) == info["vocab_size"] == model.config.vocab_size
    assert tokenizer.eos_token == IM_END and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_tokenizer_round_trip_and_think_tokens(world, tokenizer):
    _, traces = world
    think_id = tokenizer.convert_tokens_to_ids("<think>")
    close_id = tokenizer.convert_tokens_to_ids("</think>")
    for t in traces:
        ids = tokenizer(t["r1_generation"], add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == t["r1_generation"]
        assert ids[0] == think_id and close_id in ids
        assert len(ids) < 400  # keeps CPU SFT fast
    text = "<|im_start|>user\nhé, ünïcode & tabs\t 123<|im_end|>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in ids
    # think tags survive skip_special_tokens, chat markers do not
    assert tokenizer.decode(ids + [think_id], skip_special_tokens=True).endswith("<think>")
    assert "<|im_start|>" not in tokenizer.decode(ids, skip_special_tokens=True)
    assert len(tokenizer("12345", add_special_tokens=False)["input_ids"]) == 5  # digits one by one, as in Qwen2


def test_chat_template_and_assistant_mask(world, tokenizer):
    problems, traces = world
    messages = [{"role": "user", "content": problems[0]["question_content"]},
                {"role": "assistant", "content": traces[0]["r1_generation"]}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text.startswith("<|im_start|>system\n")
    assert "<|im_start|>assistant\n<think>\n" in text and text.endswith("<|im_end|>\n")
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and text.startswith(prompt)
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=False) if m]
    assert tokenizer.decode(masked) == traces[0]["r1_generation"] + IM_END
    assert has_generation_markers(tokenizer.chat_template)
    assert is_chat_template_stop_token_trained(tokenizer)


def test_generate_produces_text(model, tokenizer):
    torch.manual_seed(0)
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "Write python code."}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=20, do_sample=True, temperature=0.7, top_p=0.95)
    new = out[0][inputs["input_ids"].shape[1]:]
    assert len(new) >= 1
    assert tokenizer.decode(new, skip_special_tokens=True).strip()


def test_generic_corpus_is_deterministic():
    assert generic_corpus(3, 50) == generic_corpus(3, 50)
    assert generic_corpus(3, 50) != generic_corpus(4, 50)
    docs = generic_corpus(0, 40)
    assert any("def " in d for d in docs) and any("<|im_start|>assistant" in d for d in docs)
    assert not any("<think>" in d for d in docs)  # the base model never sees reasoning traces
    with pytest.raises(ValueError, match="n must be"):
        generic_corpus(0, -1)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="pretrain_steps"):
        build_tiny_student(tmp_path, ["text"], seed=0, pretrain_steps=-1)
    with pytest.raises(ValueError, match="corpus_texts is empty"):
        build_tiny_student(tmp_path, [], seed=0, pretrain_steps=0)


def test_prompt_tokens_are_a_prefix_of_the_conversation_tokens(world, tokenizer):
    """What the student is asked at evaluation (the prompt, ending `<|im_start|>assistant\\n`) tokenizes exactly as
    the start of what it was trained on: no token may merge the role line with the answer (phrase-level BPE would,
    if newlines were not split off)."""
    problems, traces = world
    for problem, trace in zip(problems, traces, strict=True):
        for answer in (trace["r1_generation"], f"```python\n{reference_solution(problem)}\n```"):
            messages = [*problem_messages(problem, "lcb-reasoning"), {"role": "assistant", "content": answer}]
            full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
            prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=True, add_generation_prompt=True,
                                                   return_dict=True)["input_ids"]
            assert full[:len(prompt)] == prompt, problem["question_id"]


def test_render_chatml_matches_the_chat_template(world, tokenizer):
    problems, _ = world
    messages = [*problem_messages(problems[0], "lcb-chat"), {"role": "assistant", "content": "```python\nx\n```"}]
    assert render_chatml(messages) == tokenizer.apply_chat_template(messages, tokenize=False)
    no_system = [*problem_messages(problems[0], "lcb-reasoning"), {"role": "assistant", "content": "hi"}]
    assert render_chatml(no_system) == tokenizer.apply_chat_template(no_system, tokenize=False)


def test_direct_solution_pretraining_texts_hold_only_training_problems():
    train, evaluation = make_demo_problems(0, 2 * len(FAMILIES), 2 * len(FAMILIES))
    texts = demo_pretraining_texts(0, n_generic=10, n_direct=len(train))
    direct = [t for t in texts if "```python\n" in t and "Question:" in t]
    assert len(direct) == len(train) and len(texts) == len(train) + 10
    answers = [t.split("<|im_start|>assistant\n")[-1] for t in direct]
    assert all(a.startswith("```python\n") and "<think>" not in a for a in answers)  # direct: no reasoning
    for problem, solution in zip(train, reference_solutions(train), strict=True):
        assert any(problem["question_content"] in t and f"```python\n{solution}\n```<|im_end|>" in t for t in direct)
    assert not any(p["question_content"] in t for p in evaluation for t in texts)
    easy = demo_pretraining_texts(0, n_generic=0, n_direct=len(train), direct_difficulties=("EASY",))
    assert 0 < len(easy) < len(train)
    assert demo_pretraining_texts(0, n_generic=10, n_direct=len(train)) == texts


def test_pretraining_rows_never_cut_a_document_and_learn_only_answers_of_chats(tokenizer):
    chat = render_chatml([{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "5"}])
    docs = ["a b c " * n for n in (3, 30, 7, 12, 1, 25)] + [chat]
    ids, labels = _token_blocks(tokenizer, docs, seq_len=128)
    pad = tokenizer.pad_token_id
    expected = [tokenizer(d, add_special_tokens=False)["input_ids"] + [pad] for d in docs]
    found = []
    for row in ids.tolist():
        i = 0
        while i < len(row) and not (row[i] == pad and (i == 0 or row[i - 1] == pad)):
            j = row.index(pad, i) + 1
            found.append(row[i:j])
            i = j
    assert found == expected  # every document whole, in order, tokenized as a whole
    trained = [t for t in labels.flatten().tolist() if t != -100]
    answer = tokenizer("5", add_special_tokens=False)["input_ids"]
    generic = [t for d in expected[:-1] for t in d]
    assert trained == generic + answer + [tokenizer.convert_tokens_to_ids(IM_END)] + tokenizer(
        "\n", add_special_tokens=False)["input_ids"] + [pad]  # of the chat, only the answer turn is learnt


def test_saved_tokenizer_loads_with_the_same_tokenization(world, tmp_path):
    """AutoTokenizer loads a qwen2 folder as Qwen2Tokenizer, which applies Qwen2's pre-tokenizer whatever
    tokenizer.json holds: the demo's tokenizer must tokenize identically before saving and after loading, or the
    student is pre-trained on one tokenization and evaluated on another."""
    problems, traces = world
    texts = [p["question_content"] for p in problems] + [t["r1_generation"] for t in traces]
    trained = train_tokenizer(texts + generic_corpus(0, 200), vocab_size=1024)
    build_tiny_student(tmp_path, texts, seed=0, pretrain_steps=0, vocab_size=1024, hidden_size=32, num_layers=1,
                       num_heads=2, num_kv_heads=1, intermediate_size=64, pretrain_texts=generic_corpus(1, 50))
    trained.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in texts[:20] + [render_chatml([{"role": "user", "content": texts[0]},
                                             {"role": "assistant", "content": texts[-1]}])]:
        assert loaded(text, add_special_tokens=False)["input_ids"] == trained(text, add_special_tokens=False)[
            "input_ids"]
