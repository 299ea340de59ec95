"""Chat templates for training, and turning one `{"messages": [...]}` row into trainable token ids.

The student is trained on its own chat template (the one it will be prompted with at evaluation), with loss on the
assistant turn only. Transformers computes that mask from `{% generation %}` ... `{% endgeneration %}` markers in the
template, which the production students' hub templates lack:

- Qwen2.5-Instruct: TRL 1.16 ships a training variant of the exact hub template (`trl/chat_templates/
  qwen2_5_training.jinja`) and `trl.chat_template_utils.get_training_chat_template` swaps it in.
- Llama-3.1-Instruct: TRL has no variant of the 3.1 template, so this project ships
  `chat_templates/llama3_1_training.jinja` (the hub template with the markers around the assistant turn).
- the demo tokenizer's template carries the markers itself.

A patched template must render byte-identically to the original, or the student would be trained on a format it is
never prompted with; tests/training check that for the Llama 3.1 variant.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATES_DIR = Path(__file__).parent / "chat_templates"
_GENERATION_MARKERS = ("{% generation %}", "{%- generation %}", "{% generation -%}", "{%- generation -%}")


class TrainingDataError(ValueError):
    """A training row that cannot be trained on; the message names the row and field."""


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and any(marker in template for marker in _GENERATION_MARKERS)


def read_template_file(name_or_path: str) -> str:
    """A Jinja template from a path, or from a bare file name in valley_assets/training/chat_templates/."""
    path = Path(name_or_path)
    if not path.is_file():
        path = CHAT_TEMPLATES_DIR / name_or_path
    if not path.is_file():
        known = sorted(p.name for p in CHAT_TEMPLATES_DIR.glob("*.jinja"))
        raise FileNotFoundError(f"chat template {name_or_path!r} not found (bundled: {known})")
    return path.read_text(encoding="utf-8")


def training_chat_template(tokenizer, override: str | None = None) -> str:
    """The template to train with: `override`, the tokenizer's own if it has markers, or a known patched variant."""
    if override is not None:
        template = read_template_file(override)
        if not has_generation_markers(template):
            raise ValueError(f"chat template {override!r} has no {{% generation %}} markers; assistant-only loss needs them")
        return template
    own = tokenizer.chat_template
    if isinstance(own, dict):
        own = own.get("default")
    if not own:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no chat template; the student must have one")
    if has_generation_markers(own):
        return own
    from trl.chat_template_utils import get_training_chat_template, llama3_1_chat_template

    if own == llama3_1_chat_template:
        return read_template_file("llama3_1_training.jinja")
    try:
        patched = get_training_chat_template(tokenizer)
    except ValueError as exc:
        raise ValueError(
            f"the chat template of {tokenizer.name_or_path!r} has no {{% generation %}} markers and no known training "
            "variant; write one (same rendering, markers around the assistant turn) and set `chat_template` in the recipe"
        ) from exc
    return patched if patched is not None else own


def validate_messages(messages, row: int) -> list[dict]:
    """Check one row's `messages`: role/content strings, at least one user turn, ending on the assistant turn."""
    if not isinstance(messages, list) or not messages:
        raise TrainingDataError(f"row {row}: field 'messages' must be a non-empty list, got {type(messages).__name__}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise TrainingDataError(f"row {row}: messages[{i}] must be an object, got {type(message).__name__}")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise TrainingDataError(f"row {row}: messages[{i}].{key} must be a string, got {message.get(key)!r:.60}")
        if message["role"] not in ("system", "user", "assistant"):
            raise TrainingDataError(f"row {row}: messages[{i}].role {message['role']!r} is not system/user/assistant")
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise TrainingDataError(f"row {row}: the last message must be a non-empty assistant turn (the teacher trace)")
    if not any(m["role"] == "user" for m in messages):
        raise TrainingDataError(f"row {row}: messages has no user turn")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def tokenize_conversation(tokenizer, messages: list[dict], chat_template: str, row: int) -> dict:
    """Token ids and assistant mask of one conversation, ending with EOS inside the mask.

    Templates end an assistant turn with their end-of-turn token (`<|im_end|>`, `<|eot_id|>`); when that is the
    tokenizer's EOS, the mask already covers it. Otherwise EOS is appended (masked in) so that every trained sequence
    ends with the token the student must emit to stop.
    """
    encoded = tokenizer.apply_chat_template(
        messages,
        chat_template=chat_template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    input_ids = list(encoded["input_ids"])
    mask = list(encoded["assistant_masks"])
    if 1 not in mask:
        raise TrainingDataError(
            f"row {row}: the chat template marked no assistant tokens (are the {{% generation %}} markers around the "
            "assistant content?)"
        )
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no eos_token; the student could never learn to stop")
    last_masked = max(i for i, bit in enumerate(mask) if bit)
    # Trailing whitespace after the end-of-turn token (Qwen's "<|im_end|>\n") may sit inside the mask.
    while last_masked > 0 and mask[last_masked - 1] and not tokenizer.decode([input_ids[last_masked]]).strip():
        last_masked -= 1
    if input_ids[last_masked] != eos_id:
        insert_at = max(i for i, bit in enumerate(mask) if bit) + 1
        input_ids.insert(insert_at, eos_id)
        mask.insert(insert_at, 1)
    return {"input_ids": input_ids, "assistant_masks": mask}
