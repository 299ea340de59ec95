"""Backends: vLLM request building without a GPU, and the transformers backend end to end on a tiny Qwen2."""

from types import SimpleNamespace

import pytest

from valley_assets.generation.backends import (
    Completion,
    GenerationRequest,
    SamplingConfig,
    TransformersBackend,
    build_vllm_requests,
    completions_from_vllm_output,
    finish_generated_tokens,
    load_backend,
    sample_seed,
    transformers_generation_kwargs,
    vllm_sampling_kwargs,
)
from valley_assets.generation.prompts import build_messages
from valley_assets.generation.samples import generate_samples, read_samples

# ------------------------------------------------------------------------------------------------ sampling config


def test_sampling_config_validates_and_parses():
    cfg = SamplingConfig.from_mapping({"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 32768, "stop": ["###"]})
    assert cfg.stop == ("###",) and not cfg.greedy
    with pytest.raises(ValueError, match="unknown sampling keys \\['top_k'\\]"):
        SamplingConfig.from_mapping({"top_k": 5})
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingConfig(max_new_tokens=40000)
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=-1)


# ------------------------------------------------------------------------------------------------------------ vLLM


def test_vllm_sampling_kwargs():
    cfg = SamplingConfig(temperature=0.6, top_p=0.95, max_new_tokens=32768, seed=7, stop=("</answer>",))
    assert vllm_sampling_kwargs(cfg, n=16) == {
        "n": 16, "temperature": 0.6, "top_p": 0.95, "max_tokens": 32768, "seed": 7, "skip_special_tokens": True,
        "stop": ["</answer>"],
    }
    greedy = vllm_sampling_kwargs(SamplingConfig(temperature=0.0, top_p=0.5))
    assert greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0 and "stop" not in greedy
    with pytest.raises(ValueError, match="n must be >= 1"):
        vllm_sampling_kwargs(cfg, n=0)


def test_build_vllm_requests_one_prompt_per_question_with_stable_seeds_and_capped_tokens():
    cfg = SamplingConfig(temperature=0.6, top_p=0.95, max_new_tokens=1000, seed=3)
    requests = [
        GenerationRequest("a", (1, 2, 3), (0, 1, 2, 3)),
        GenerationRequest("b", tuple(range(900)), (2, 3)),
    ]
    prompts, params = build_vllm_requests(requests, cfg, max_model_len=1024)
    assert prompts == [{"prompt_token_ids": [1, 2, 3]}, {"prompt_token_ids": list(range(900))}]
    assert [p["n"] for p in params] == [4, 2]
    assert params[0]["max_tokens"] == 1000 and params[1]["max_tokens"] == 124  # room left in the context
    assert params[0]["seed"] == sample_seed(3, "a", 0) and params[1]["seed"] == sample_seed(3, "b", 2)
    assert params[0]["seed"] != params[1]["seed"]
    assert build_vllm_requests(requests, cfg)[1][0]["seed"] == params[0]["seed"]  # stable across calls
    with pytest.raises(ValueError, match="question 'b': prompt has 900 tokens"):
        build_vllm_requests(requests, cfg, max_model_len=900)


def test_completions_from_vllm_output():
    out = SimpleNamespace(
        request_id="0",
        prompt_token_ids=[1, 2, 3, 4],
        outputs=[SimpleNamespace(text="abc", token_ids=[5, 6, 7], finish_reason="stop"),
                 SimpleNamespace(text="abcdef", token_ids=[5] * 9, finish_reason="length")],
    )
    assert completions_from_vllm_output(out) == [Completion("abc", "stop", 4, 3), Completion("abcdef", "length", 4, 9)]
    out.outputs[0].finish_reason = "abort"
    with pytest.raises(RuntimeError, match="finish_reason='abort'"):
        completions_from_vllm_output(out)


def test_vllm_backend_needs_the_optional_package():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="optional 'vllm' package"):
            load_backend("vllm", "/nonexistent")
    else:
        pytest.skip("vllm is installed here; the missing-package message is not reachable")
    with pytest.raises(ValueError, match="unknown backend_options \\['bogus'\\]"):
        load_backend("transformers", "/nonexistent", options={"bogus": 1})
    with pytest.raises(ValueError, match="unknown generation backend 'tgi'"):
        load_backend("tgi", "/nonexistent")


# ---------------------------------------------------------------------------------------- finishing generated rows


def _decode(ids):
    return "".join(chr(ord("a") + i - 10) for i in ids)


def test_finish_at_eos_counts_the_eos_token():
    c = finish_generated_tokens([10, 11, 2, 0, 0], prompt_tokens=5, eos_token_ids={2}, pad_token_id=0, stop=(),
                                decode=_decode)
    assert c == Completion("ab", "stop", 5, 3)


def test_no_eos_is_length():
    c = finish_generated_tokens([10, 11, 12], prompt_tokens=5, eos_token_ids={2}, pad_token_id=0, stop=(),
                                decode=_decode)
    assert c == Completion("abc", "length", 5, 3)


def test_stop_string_cuts_text_and_counts_as_stop():
    c = finish_generated_tokens([10, 11, 12, 13, 0, 0], prompt_tokens=5, eos_token_ids={2}, pad_token_id=0,
                                stop=("cd",), decode=_decode)
    assert c == Completion("ab", "stop", 5, 4)


# -------------------------------------------------------------------------------- transformers, tiny model, CPU


@pytest.fixture(scope="module")
def tiny_backend(tiny_student_dir):
    return TransformersBackend.from_pretrained(str(tiny_student_dir), batch_size=4, device="cpu", dtype="float32")


def test_transformers_backend_renders_through_the_chat_template(tiny_backend):
    ids = tiny_backend.render(build_messages("Print 2.", "", "lcb-chat"))
    text = tiny_backend.tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nYou are an expert Python programmer.")
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_greedy_batched_left_padded_equals_one_at_a_time(tiny_backend):
    cfg = SamplingConfig(temperature=0.0, max_new_tokens=12)
    requests = [
        GenerationRequest(f"q{i}", tuple(tiny_backend.render(build_messages("x" * (5 + 17 * i), ""))), (0,))
        for i in range(3)
    ]
    assert len({len(r.prompt_token_ids) for r in requests}) == 3  # padding really happens
    batched = tiny_backend.generate(requests, cfg)
    single = TransformersBackend(tiny_backend.model, tiny_backend.tokenizer, batch_size=1).generate(requests, cfg)
    assert batched == single
    for req, [c] in zip(requests, batched, strict=True):
        assert c.prompt_tokens == len(req.prompt_token_ids)
        assert c.finish_reason in ("stop", "length")
        assert (c.completion_tokens == 12) if c.finish_reason == "length" else (1 <= c.completion_tokens <= 12)


def test_sampling_is_reproducible_and_returns_one_completion_per_index(tiny_backend):
    cfg = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=8, seed=11)
    req = [GenerationRequest("q", tuple(tiny_backend.render(build_messages("Add.", ""))), (0, 1, 2, 5, 6))]
    a = tiny_backend.generate(req, cfg)
    assert len(a) == 1 and len(a[0]) == 5
    assert tiny_backend.generate(req, cfg) == a
    assert len({c.text for c in a[0]}) > 1  # samples differ from one another


def test_checkpoint_generation_defaults_do_not_leak_into_sampling(tiny_backend):
    """A generation_config.json with top_k=1 would make every sample the greedy one; we sample like vLLM instead."""
    import copy

    model = copy.deepcopy(tiny_backend.model)
    model.generation_config.top_k = 1
    model.generation_config.repetition_penalty = 5.0
    backend = TransformersBackend(model, tiny_backend.tokenizer, batch_size=8)
    req = [GenerationRequest("q", tuple(backend.render(build_messages("Add.", ""))), tuple(range(6)))]
    [samples] = backend.generate(req, SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=6, seed=3))
    assert len({c.text for c in samples}) > 1
    kwargs = transformers_generation_kwargs(SamplingConfig(temperature=0.0), {2, 0}, 0)
    assert kwargs["do_sample"] is False and kwargs["top_k"] == 0 and kwargs["repetition_penalty"] == 1.0
    assert kwargs["eos_token_id"] == [0, 2] and kwargs["stop_strings"] is None


def test_eos_ends_a_sample_with_finish_reason_stop(tiny_backend):
    import copy

    import torch

    model = copy.deepcopy(tiny_backend.model)
    with torch.no_grad():
        model.lm_head.weight.zero_()  # all logits tie; greedy picks id 0, an EOS id
    backend = TransformersBackend(model, tiny_backend.tokenizer)
    req = [GenerationRequest("q", tuple(backend.render(build_messages("Add.", ""))), (0,))]
    [[c]] = backend.generate(req, SamplingConfig(temperature=0.0, max_new_tokens=8))
    assert c == Completion("", "stop", len(req[0].prompt_token_ids), 1)


def test_generate_samples_end_to_end_on_tiny_model(tiny_backend, tmp_path, make_problems):
    problems = make_problems(3)
    out = tmp_path / "samples.jsonl"
    report = generate_samples(tiny_backend, problems, n=2, out_path=out, chunk_size=2, prompt_id="lcb-reasoning",
                              sampling=SamplingConfig(temperature=0.7, top_p=0.95, max_new_tokens=6))
    rows = read_samples(out)
    assert len(rows) == 6 and report.complete and report.chunks_run == 2
    assert all(r["prompt_id"] == "lcb-reasoning" and r["completion_tokens"] <= 6 for r in rows)
    assert report.completion_tokens == sum(r["completion_tokens"] for r in rows)
    assert sum(report.finish_reasons.values()) == 6
