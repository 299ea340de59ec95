"""Parameters of the SFT entrypoint (`python -m valley_assets.training.sft`), the contract between the training assets,
which build them, and the pod, which parses them (`valley_assets.entrypoint`).

Light on purpose (pydantic, the recipe model): the assets import it without torch or TRL.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from valley_assets.entrypoint import EntrypointParams
from valley_assets.training import checkpoints as ckpt
from valley_assets.training.recipe import BASE_KEY, Recipe, RecipeError, load_recipe

# Trackers the entrypoint knows how to place; credentials and endpoints come only from the environment (the pod's
# Secret), never from parameters, which end up in Dagster's event log.
TRACKERS = ("none", "tensorboard", "wandb", "mlflow")


class SFTParams(EntrypointParams):
    recipe: Recipe = Field(description="the resolved recipe (every field): the assets resolve it once, ship it, and "
                                       "record exactly this in the checkpoint's provenance. By hand, a bundled "
                                       "recipe name or a YAML path is resolved here")
    train_file: str = Field(min_length=1, description="JSONL of {messages: [system?, user, assistant]}; path or URL")
    base_model: str = Field(min_length=1, description="local folder, hub id, or a model folder on an object store")
    output_dir: str = Field(min_length=1, description="local folder or fsspec URL; layout in training/checkpoints.py")
    resume_from_checkpoint: Literal["auto"] | None = Field(
        default="auto", description="auto: continue from the newest durable checkpoint; null: start over")
    report_to: list[str] = Field(
        default_factory=lambda: ["none"],
        description="'none' (Dagster metadata only) or trackers: tensorboard, wandb, mlflow; their files go to "
                    "<output_dir>/logs/")

    @field_validator("recipe", mode="before")
    @classmethod
    def _resolve_named_recipe(cls, value: Any) -> Any:
        if isinstance(value, str) or (isinstance(value, dict) and BASE_KEY in value):
            try:
                return load_recipe(value)
            except RecipeError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("output_dir")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_tracker_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, value: list[str]) -> list[str]:
        if not value or not all(value):
            raise ValueError(f"name a tracker or 'none', got {value!r}")
        unknown = sorted(set(value) - set(TRACKERS))
        if unknown:
            raise ValueError(f"unknown trackers {unknown}; known: {sorted(TRACKERS)}")
        if "none" in value and len(value) > 1:
            raise ValueError(f"'none' cannot be combined with trackers, got {value!r}")
        return value

    @property
    def resume(self) -> bool:
        return self.resume_from_checkpoint == "auto"

    def run_fingerprint(self) -> str:
        """What a finished model in `output_dir` was trained from (recipe, base model, training file's sha256): the
        entrypoint trains nothing when `output_dir` holds a complete model of this fingerprint, and the training
        assets launch no Job then (`finished_run`)."""
        return ckpt.run_fingerprint(self.recipe.model_dump(), self.base_model, ckpt.file_sha256(self.train_file))

    def finished_run(self, fingerprint: str | None = None) -> dict | None:
        """The summary of the finished model `output_dir` holds for exactly these inputs, or None."""
        fingerprint = fingerprint or self.run_fingerprint()
        if ckpt.is_complete_checkpoint(self.output_dir) and ckpt.read_run_fingerprint(self.output_dir) == fingerprint:
            return ckpt.read_summary(self.output_dir)
        return None
