"""Parameters of the generation entrypoint (`python -m valley_assets.generation.run`), the contract between the assets
that build them (evaluation, extra teachers) and the Job that parses them (`valley_assets.entrypoint`).

Light on purpose (pydantic and the dependency-free interface/prompt modules): the assets import it without torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from valley_assets.entrypoint import EntrypointParams
from valley_assets.generation.interface import SamplingConfig
from valley_assets.generation.prompts import PROMPTS


class GenerationParams(EntrypointParams):
    model_path: str = Field(description="checkpoint folder, hub id, model folder on an object store, or endpoint model")
    problems_path: str = Field(description="JSONL of Problem records (valley_assets.records); local path or URL")
    out_path: str = Field(description="samples JSONL (Sample records); appended, resumable; local path or URL")
    backend: Literal["transformers", "vllm"] = "transformers"
    prompt_id: str = "lcb-chat"
    n: int = Field(default=1, ge=1)
    chunk_size: int = Field(default=64, ge=1)
    sampling: dict[str, Any] = Field(default_factory=dict, description="SamplingConfig fields")
    backend_options: dict[str, Any] = Field(default_factory=dict)
    max_chunks: int | None = Field(default=None, ge=1)
    limit_problems: int | None = Field(default=None, ge=1, description="only the first N problems (smoke runs)")

    @field_validator("prompt_id")
    @classmethod
    def _registered_prompt(cls, value: str) -> str:
        if value not in PROMPTS:
            raise ValueError(f"unknown prompt_id {value!r}; registered: {sorted(PROMPTS)}")
        return value

    @field_validator("sampling")
    @classmethod
    def _valid_sampling(cls, value: dict[str, Any]) -> dict[str, Any]:
        SamplingConfig.from_mapping(value)
        return value

    def sampling_config(self) -> SamplingConfig:
        return SamplingConfig.from_mapping(self.sampling)
