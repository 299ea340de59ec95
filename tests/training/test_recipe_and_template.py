from __future__ import annotations

import json

import pytest

from valley_assets.training import checkpoints as ckpt
from valley_assets.training.chat_template import (
    TrainingDataError,
    read_template_file,
    tokenize_conversation,
    training_chat_template,
    validate_messages,
)
from valley_assets.training.recipe import RecipeError, load_recipe


@pytest.mark.parametrize("name", ["qwen2.5-7b-instruct", "llama3.1-8b-instruct", "demo-tiny"])
def test_bundled_recipes_load_and_build_sft_configs(name, tmp_path):
    recipe = load_recipe(name, {"precision": "auto"})  # bf16 TrainingArguments refuse to build without a GPU
    world = 8 if recipe.global_batch_size >= 128 else 1
    config = recipe.to_sft_config(str(tmp_path), world, use_bf16=False)
    assert config.per_device_train_batch_size * config.gradient_accumulation_steps * world == recipe.global_batch_size
    assert config.assistant_only_loss is True
    assert config.warmup_steps == pytest.approx(0.1)


def test_paper_defaults_in_production_recipes():
    for name in ("qwen2.5-7b-instruct", "llama3.1-8b-instruct"):
        r = load_recipe(name)
        assert (r.learning_rate, r.global_batch_size, r.num_train_epochs, r.max_length) == (8e-5, 128, 5, 32768)
        assert r.precision == "bf16" and r.lr_scheduler_type == "cosine"
    assert load_recipe("qwen2.5-7b-instruct").gradient_accumulation_steps(16) == 8


def test_recipe_validation_errors():
    with pytest.raises(RecipeError, match="not divisible"):
        load_recipe("demo-tiny", {"per_device_batch_size": 3})
    with pytest.raises(RecipeError, match="unknown fields"):
        load_recipe("demo-tiny", {"lr": 1.0})
    with pytest.raises(RecipeError, match="unknown recipe"):
        load_recipe("no-such-recipe")
    with pytest.raises(RecipeError, match="world_size = 2 x 4"):
        load_recipe("demo-tiny").gradient_accumulation_steps(4)


def test_llama31_training_template_renders_like_the_hub_template_and_masks_eot():
    from trl.chat_template_utils import llama3_1_chat_template
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    patched = read_template_file("llama3_1_training.jinja")
    env = ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"], trim_blocks=True, lstrip_blocks=True)

    class Gen(__import__("jinja2").ext.Extension):  # render {% generation %} as a no-op block, as transformers does
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return __import__("jinja2").nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    env.add_extension(Gen)
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"},
                {"role": "assistant", "content": "<think>x</think>\n```python\nprint(1)\n```"}]
    kwargs = dict(messages=messages, bos_token="<|begin_of_text|>", add_generation_prompt=False)
    assert env.from_string(patched).render(**kwargs) == env.from_string(llama3_1_chat_template).render(**kwargs)


def test_tokenize_conversation_masks_assistant_and_ends_with_eos(tiny_student):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_student)
    template = training_chat_template(tok)
    messages = validate_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>a</think>ok"}], 0)
    out = tokenize_conversation(tok, messages, template, 0)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(masked).startswith("<think>a</think>ok")
    assert tok.eos_token_id in masked
    assert out["assistant_masks"][0] == 0  # the prompt is not trained on
    # a template whose turn does not end in EOS gets EOS appended inside the mask
    plain = "{%- for m in messages %}{%- if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}{% endgeneration %}{%- else %}{{ m['content'] }}{%- endif %}{%- endfor %}"
    out = tokenize_conversation(tok, messages, plain, 0)
    assert out["input_ids"][-1] == tok.eos_token_id and out["assistant_masks"][-1] == 1


@pytest.mark.parametrize("messages, match", [
    ([], "non-empty list"),
    ([{"role": "user", "content": "q"}], "last message must be a non-empty assistant"),
    ([{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}], r"messages\[0\].content"),
    ([{"role": "tool", "content": "x"}, {"role": "assistant", "content": "a"}], "not system/user/assistant"),
])
def test_bad_rows_are_named(messages, match):
    with pytest.raises(TrainingDataError, match=f"row 7: .*{match}"):
        validate_messages(messages, 7)


def test_checkpoint_helpers_local_and_remote(tmp_path):
    steps = tmp_path / "_steps"
    for step, done in ((2, True), (4, True), (6, False)):
        d = steps / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "model.bin").write_text(str(step))
        if done:
            ckpt.mark_complete(str(d))
    assert ckpt.latest_complete_checkpoint(str(steps)).endswith("checkpoint-4")
    assert not ckpt.is_complete_checkpoint(str(steps / "checkpoint-6"))
    assert [p.rsplit("/", 1)[-1] for p in ckpt.remove_incomplete_checkpoints(str(steps))] == ["checkpoint-6"]
    # remote mirror: upload then download round trip, marker last
    remote = "memory://valley-test/run/_steps/checkpoint-4"
    ckpt.upload_checkpoint(str(steps / "checkpoint-4"), remote)
    assert ckpt.is_complete_checkpoint(remote)
    local = ckpt.download_checkpoint(remote, str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "model.bin").read_text() == "4"
    ckpt.prune_remote_checkpoints("memory://valley-test/run/_steps", keep_steps=set())
    assert ckpt.latest_complete_checkpoint("memory://valley-test/run/_steps") is None
    # claiming a folder that a training run did not write is refused
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not written by a training run"):
        ckpt.claim_output_dir(str(foreign), "fp")
    assert ckpt.claim_output_dir(str(tmp_path / "new"), "fp") is False
    assert ckpt.claim_output_dir(str(tmp_path / "new"), "fp") is True
    assert json.loads((tmp_path / "new" / "_run.json").read_text())["fingerprint"] == "fp"
