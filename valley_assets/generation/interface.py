"""The generation backend interface: what a backend is asked (`GenerationRequest`, `SamplingConfig`), what it returns
(`Completion`), and the helpers every backend shares (`sample_seed`, `render_chat`).

Dependency-free on purpose: the study config validates sampling settings with `SamplingConfig`, and every backend
(transformers, vLLM, the OpenAI-compatible endpoint) builds on these types, so none of them has to import another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

FINISH_REASONS = ("stop", "length")
# The paper samples up to 32K new tokens; more than that exceeds every student's context.
MAX_NEW_TOKENS_LIMIT = 32768


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample. `n` (samples per problem) lives with the driver, because a resumed run asks for fewer."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise ValueError(f"sampling.temperature must be a number >= 0, got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ValueError(f"sampling.top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.max_new_tokens, int) or not 0 < self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise ValueError(
                f"sampling.max_new_tokens must be an int in 1..{MAX_NEW_TOKENS_LIMIT}, got {self.max_new_tokens!r}"
            )
        if not isinstance(self.seed, int):
            raise ValueError(f"sampling.seed must be an int, got {self.seed!r}")
        stop = tuple(self.stop)
        if any(not isinstance(s, str) or not s for s in stop):
            raise ValueError(f"sampling.stop must be non-empty strings, got {self.stop!r}")
        object.__setattr__(self, "stop", stop)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SamplingConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown sampling keys {unknown}; known keys: {sorted(known)}")
        return cls(**{k: (tuple(v) if k == "stop" else v) for k, v in values.items()})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class GenerationRequest:
    question_id: str
    prompt_token_ids: tuple[int, ...]
    sample_indices: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.prompt_token_ids:
            raise ValueError(f"question {self.question_id!r}: empty prompt")
        if not self.sample_indices:
            raise ValueError(f"question {self.question_id!r}: a request must ask for at least one sample")


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop": ended by EOS or a stop string; "length": hit max_new_tokens (or the context end)
    prompt_tokens: int
    completion_tokens: int

    def __post_init__(self) -> None:
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason must be one of {FINISH_REASONS}, got {self.finish_reason!r}")


class GenerationBackend(Protocol):
    name: str

    def render(self, messages: list[dict]) -> list[int]:
        """Prompt token ids of chat messages, through the model's own chat template, ready for the answer."""

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig) -> list[list[Completion]]:
        """One list per request, one Completion per entry of `request.sample_indices`, in that order."""


def sample_seed(base_seed: int, question_id: str, sample_idx: int) -> int:
    """A seed for one (question, sample) that is stable across processes (unlike `hash()`), in [0, 2**31)."""
    digest = hashlib.sha256(f"{base_seed}:{question_id}:{sample_idx}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def render_chat(tokenizer, messages: list[dict]) -> list[int]:
    """Render through the chat template as text, then tokenize without adding special tokens again.

    Templates already start with BOS where the model wants it (Llama 3's `<|begin_of_text|>`); tokenizing the
    rendered text with `add_special_tokens=True` would add a second one.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; "
            "generation prompts are chat messages and need one"
        )
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
