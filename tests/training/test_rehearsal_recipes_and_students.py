"""Recipe inheritance, the checkpoint interval resolved per run size, and the tiny students' real chat templates."""

from __future__ import annotations

import pytest

from valley_assets.training.recipe import RecipeError, load_recipe

# What a rehearsal recipe may change relative to its production base: sizes and step counts only.
SHRINKABLE = {"name", "description", "global_batch_size", "per_device_batch_size", "max_length", "num_train_epochs",
              "max_steps", "checkpoints_per_run", "save_steps", "save_total_limit", "dataset_num_proc"}


@pytest.mark.parametrize("rehearsal, production", [("rehearsal-qwen2.5", "qwen2.5-7b-instruct"),
                                                   ("rehearsal-llama3.1", "llama3.1-8b-instruct")])
def test_rehearsal_recipes_inherit_everything_but_sizes(rehearsal, production):
    small, big = load_recipe(rehearsal).model_dump(), load_recipe(production).model_dump()
    changed = {k for k in big if small[k] != big[k]}
    assert changed <= SHRINKABLE, changed - SHRINKABLE
    assert small["name"] == rehearsal and small["global_batch_size"] < big["global_batch_size"]
    assert small["max_length"] < big["max_length"]
    # The science is inherited as written in the production file.
    for key in ("learning_rate", "lr_scheduler_type", "warmup_ratio", "precision", "padding_free", "packing",
                "gradient_checkpointing", "chat_template", "attn_implementation"):
        assert small[key] == big[key], key
    # 2 pods x 1 rank: the global batch must split over a world of 2.
    assert load_recipe(rehearsal).gradient_accumulation_steps(2) == 2


def test_base_chain_overrides_and_errors(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("base: qwen2.5-7b-instruct\nname: child\nmax_length: 1024\n")
    grandchild = tmp_path / "grandchild.yaml"
    grandchild.write_text("base: child.yaml\nname: grandchild\nsave_steps: 7\n")  # relative to the derived file
    r = load_recipe(str(grandchild), {"num_train_epochs": 1})
    assert (r.name, r.max_length, r.learning_rate, r.num_train_epochs) == ("grandchild", 1024, 8e-5, 1)
    # A layer that sets the interval in one form replaces the other form.
    assert (r.save_steps, r.checkpoints_per_run) == (7, None)
    assert load_recipe("demo-tiny", {"checkpoints_per_run": 3}).save_steps is None
    assert load_recipe("qwen2.5-7b-instruct", {"save_steps": 9}).resolve_save_steps(1000) == 9

    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\nname: loop\n")
    with pytest.raises(RecipeError, match="inherits from itself"):
        load_recipe(str(loop))
    nameless = tmp_path / "nameless.yaml"
    nameless.write_text("base: qwen2.5-7b-instruct\nmax_length: 10\n")
    with pytest.raises(RecipeError, match="needs its own `name`"):
        load_recipe(str(nameless))
    missing = tmp_path / "missing.yaml"
    missing.write_text("base: no-such-recipe\nname: m\n")
    with pytest.raises(RecipeError, match="unknown recipe 'no-such-recipe'"):
        load_recipe(str(missing))
    with pytest.raises(RecipeError, match="checkpoint interval"):
        load_recipe("qwen2.5-7b-instruct", {"checkpoints_per_run": None})


@pytest.mark.parametrize("examples, expected_steps, expected_interval", [
    (1_000, 40, 4),      # 1k: ceil(1000/128) = 8 steps/epoch x 5 epochs
    (10_000, 395, 40),   # 10k: 79 x 5
    (30_000, 1175, 118),  # 30k: 235 x 5
])
def test_production_checkpoint_interval_fits_every_run_size(examples, expected_steps, expected_interval):
    import math

    recipe = load_recipe("qwen2.5-7b-instruct")
    max_steps = math.ceil(examples / recipe.global_batch_size) * int(recipe.num_train_epochs)
    assert max_steps == expected_steps
    interval = recipe.resolve_save_steps(max_steps)
    assert interval == expected_interval
    # Every run size leaves restart points, and about checkpoints_per_run of them (the old fixed 50 left none at 1k).
    assert max_steps // interval in (recipe.checkpoints_per_run - 1, recipe.checkpoints_per_run)


def test_checkpoint_interval_reaches_the_trainer(tmp_path):
    """The Trainer starts from the run fraction (SFTConfig.save_steps < 1) and the callback sets the exact steps."""
    from types import SimpleNamespace

    from valley_assets.training.sft_trainer import CheckpointIntervalCallback

    recipe = load_recipe("qwen2.5-7b-instruct", {"precision": "auto"})
    config = recipe.to_sft_config(str(tmp_path), 8, use_bf16=False)
    assert config.save_steps == pytest.approx(0.1) and config.save_strategy == "steps"
    state = SimpleNamespace(max_steps=40, save_steps=999)
    logged = []
    callback = CheckpointIntervalCallback(recipe, SimpleNamespace(log=logged.append))
    callback.on_train_begin(config, state, None)
    assert state.save_steps == 4 and callback.save_steps == 4 and "every 4 of 40" in logged[0]


# --- students -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def students(tmp_path_factory):
    from tests.rehearsal.students import write_tiny_students

    return write_tiny_students(tmp_path_factory.mktemp("students"))


MESSAGES = [
    {"role": "system", "content": "You are a careful programmer."},
    {"role": "user", "content": "Read two integers and print their sum."},
    {"role": "assistant", "content": "<think>\nAdd them.\n</think>\n```python\na, b = map(int, input().split())\n"
                                     "print(a + b)\n```"},
]


def test_students_are_small_real_architectures_with_the_hub_templates(students):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl.chat_template_utils import llama3_1_chat_template, qwen2_5_chat_template

    assert set(students) == {"qwen2.5-7b-instruct", "llama3.1-8b-instruct"}
    qwen, llama = students["qwen2.5-7b-instruct"], students["llama3.1-8b-instruct"]
    for folder, arch in ((qwen, "Qwen2ForCausalLM"), (llama, "LlamaForCausalLM")):
        model = AutoModelForCausalLM.from_pretrained(folder)
        assert type(model).__name__ == arch and AutoConfig.from_pretrained(folder).architectures == [arch]
        assert sum(p.numel() for p in model.parameters()) <= 2_000_000
        assert not model.config.tie_word_embeddings

    q = AutoTokenizer.from_pretrained(qwen)
    assert q.chat_template == qwen2_5_chat_template
    assert (q.eos_token, q.pad_token, q.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    for token in ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<tool_call>", "<|fim_prefix|>"):
        assert len(q.encode(token, add_special_tokens=False)) == 1, token
    rendered = q.apply_chat_template(MESSAGES[1:2], tokenize=False, add_generation_prompt=True)
    assert rendered == ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                        "<|im_end|>\n<|im_start|>user\nRead two integers and print their sum.<|im_end|>\n"
                        "<|im_start|>assistant\n")

    lt = AutoTokenizer.from_pretrained(llama)
    assert lt.chat_template == llama3_1_chat_template
    assert (lt.bos_token, lt.eos_token, lt.pad_token) == ("<|begin_of_text|>", "<|eot_id|>", None)
    assert lt("x")["input_ids"][0] == lt.bos_token_id  # the post-processor prepends <|begin_of_text|>
    ids = lt.convert_tokens_to_ids(["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"])
    assert AutoConfig.from_pretrained(llama).eos_token_id == ids
    rendered = lt.apply_chat_template(MESSAGES[1:2], tokenize=False, add_generation_prompt=True)
    assert rendered.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date:")
    assert rendered.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


@pytest.mark.parametrize("student, end_of_turn", [("qwen2.5-7b-instruct", "<|im_end|>"),
                                                  ("llama3.1-8b-instruct", "<|eot_id|>")])
def test_training_template_masks_exactly_the_assistant_turn(students, student, end_of_turn):
    from transformers import AutoTokenizer

    from valley_assets.training.chat_template import (
        has_generation_markers,
        tokenize_conversation,
        training_chat_template,
    )

    tok = AutoTokenizer.from_pretrained(students[student])
    template = training_chat_template(tok, None)  # the hub template is recognised and swapped for its training twin
    assert has_generation_markers(template) and template != tok.chat_template
    out = tokenize_conversation(tok, MESSAGES, template, 0)
    ids, mask = out["input_ids"], out["assistant_masks"]
    # Same tokens as the hub template renders (the training twin renders byte-identically), no second BOS.
    plain = tok.apply_chat_template(MESSAGES, tokenize=True, return_dict=True)["input_ids"]
    assert ids[:len(plain)] == list(plain)
    first, last = mask.index(1), len(mask) - 1 - mask[::-1].index(1)
    assert all(mask[first:last + 1]) and not any(mask[:first]) and not any(mask[last + 1:])
    trained = tok.decode(ids[first:last + 1])
    assert trained.strip().startswith("<think>") and MESSAGES[-1]["content"] in trained
    # The turn ends with the end-of-turn token, which is EOS, inside the mask (Qwen's template also masks in the
    # newline after <|im_end|>).
    last_visible = max(i for i in range(first, last + 1) if tok.decode([ids[i]]).strip())
    assert ids[last_visible] == tok.eos_token_id and tok.convert_ids_to_tokens(ids[last_visible]) == end_of_turn
    assert "user" not in tok.decode([i for i, m in zip(ids, mask, strict=True) if m])  # prompt never in the loss
