"""Training recipes: the hyper-parameters of one student's SFT, as a validated YAML file.

A recipe names everything that decides what the student learns (learning rate, schedule, epochs, global batch,
sequence budget) separately from how the cluster delivers it (GPUs, nodes). The global batch is fixed by the recipe
and the gradient-accumulation steps are derived from the world size at launch time, so the same recipe gives the same
optimisation trajectory on 1 node or 4:

    global_batch_size = per_device_batch_size x gradient_accumulation_steps x world_size

Recipes live in `valley_assets/training/recipes/<name>.yaml`; `load_recipe` also takes a path to any YAML file and a
dict of overrides (dotted keys are not needed: the recipe is flat).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RECIPES_DIR = Path(__file__).parent / "recipes"


class RecipeError(ValueError):
    """A recipe that cannot be trained as written."""


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""

    # --- optimisation ---------------------------------------------------------------------------------------------
    learning_rate: float = Field(gt=0)
    lr_scheduler_type: Literal["cosine", "linear", "constant_with_warmup", "cosine_with_min_lr"] = "cosine"
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    num_train_epochs: float = Field(gt=0)
    max_steps: int = Field(default=-1, description="> 0 stops after that many optimizer steps (smoke runs, tests)")
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    seed: int = 0

    # --- batch and sequence ---------------------------------------------------------------------------------------
    global_batch_size: int = Field(gt=0, description="sequences per optimizer step, over all devices")
    per_device_batch_size: int = Field(gt=0)
    max_length: int = Field(gt=0, description="token budget of one example (prompt + trace + EOS)")
    packing: bool = Field(
        default=False,
        description="bin-pack examples into rows of max_length tokens (TRL 'bfd'); a batch then counts packed rows, "
        "not examples, so it changes the number of optimizer steps",
    )
    padding_free: bool = Field(
        default=True,
        description="flatten each batch into one row without padding (position_ids mark the boundaries); needs "
        "FlashAttention on GPU, and works with sdpa/eager through transformers' packed-sequence masks on CPU",
    )

    # --- memory / numerics ----------------------------------------------------------------------------------------
    gradient_checkpointing: bool = True
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto", description="auto = bf16 on a GPU that supports it, fp32 otherwise (CPU)"
    )
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = Field(
        default="auto", description="auto = flash_attention_2 on GPU when installed, sdpa otherwise"
    )

    # --- chat template ----------------------------------------------------------------------------------------------
    chat_template: str | None = Field(
        default=None,
        description="Jinja file with {% generation %} markers to train with; a bare name is looked up in "
        "valley_assets/training/chat_templates/. None = the tokenizer's own template, patched if it lacks the "
        "markers (see valley_assets.training.chat_template)",
    )

    # --- checkpoints and logging ----------------------------------------------------------------------------------
    save_steps: int = Field(default=100, gt=0, description="durable checkpoint every N optimizer steps")
    save_total_limit: int = Field(default=2, ge=1, description="intermediate checkpoints kept (each holds optimizer)")
    logging_steps: int = Field(default=1, gt=0)
    dataset_num_proc: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        if self.global_batch_size % self.per_device_batch_size:
            raise ValueError(
                f"global_batch_size={self.global_batch_size} is not divisible by "
                f"per_device_batch_size={self.per_device_batch_size}"
            )
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be -1 (use num_train_epochs) or > 0, got {self.max_steps}")
        return self

    # ---------------------------------------------------------------------------------------------------------------
    def gradient_accumulation_steps(self, world_size: int) -> int:
        """Accumulation steps that keep the global batch fixed on `world_size` devices; raise if impossible."""
        if world_size < 1:
            raise RecipeError(f"world_size must be >= 1, got {world_size}")
        per_step = self.per_device_batch_size * world_size
        if self.global_batch_size % per_step:
            raise RecipeError(
                f"recipe {self.name!r}: global_batch_size={self.global_batch_size} is not divisible by "
                f"per_device_batch_size x world_size = {self.per_device_batch_size} x {world_size} = {per_step}"
            )
        return self.global_batch_size // per_step

    def to_sft_config(self, output_dir: str, world_size: int, *, use_bf16: bool | None = None, **extra: Any):
        """The TRL `SFTConfig` for this recipe on `world_size` devices, writing checkpoints under `output_dir`.

        `use_bf16` resolves `precision: auto` (the entrypoint passes what the hardware supports); `extra` are
        TrainingArguments set by the entrypoint rather than the recipe (report_to, logging_dir, ...).
        """
        from trl import SFTConfig  # heavy import, only where a config is built

        if self.precision == "auto":
            bf16 = bool(use_bf16)
        else:
            bf16 = self.precision == "bf16"
        # With padding-free and no packing, TRL refuses a max_length (it cannot enforce it without packing); the
        # entrypoint drops over-long examples itself before TRL sees them, so TRL gets None in that case.
        trl_max_length = self.max_length if self.packing or not self.padding_free else None
        return SFTConfig(
            output_dir=output_dir,
            learning_rate=self.learning_rate,
            lr_scheduler_type=self.lr_scheduler_type,
            # transformers 5: `warmup_ratio` is gone; a float < 1 in `warmup_steps` is a ratio of the total steps.
            warmup_steps=self.warmup_ratio,
            num_train_epochs=self.num_train_epochs,
            max_steps=self.max_steps,
            weight_decay=self.weight_decay,
            max_grad_norm=self.max_grad_norm,
            adam_beta1=self.adam_beta1,
            adam_beta2=self.adam_beta2,
            seed=self.seed,
            per_device_train_batch_size=self.per_device_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps(world_size),
            max_length=trl_max_length,
            packing=self.packing,
            packing_strategy="bfd",
            padding_free=self.padding_free,
            assistant_only_loss=True,
            activation_checkpointing=self.gradient_checkpointing,
            gradient_checkpointing=self.gradient_checkpointing,
            bf16=bf16,
            fp16=False,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=self.save_total_limit,
            logging_steps=self.logging_steps,
            logging_first_step=True,
            # padding-free batches hold no padding, so every input token is a real one
            include_num_input_tokens_seen="all" if self.padding_free or self.packing else "non_padding",
            dataset_num_proc=self.dataset_num_proc,
            **extra,
        )


def recipe_path(name_or_path: str) -> Path:
    """The YAML file of a recipe: a bundled name (`qwen2.5-7b-instruct`) or a path to a .yaml/.yml file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise RecipeError(f"recipe file {candidate} does not exist")
        return candidate
    bundled = RECIPES_DIR / f"{name_or_path}.yaml"
    if not bundled.is_file():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
        raise RecipeError(f"unknown recipe {name_or_path!r}; bundled recipes: {known}, or pass a path to a .yaml file")
    return bundled


def load_recipe(name_or_path: str | dict, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load and validate a recipe (bundled name, YAML path, or an already-parsed dict), applying `overrides`."""
    if isinstance(name_or_path, dict):
        raw, source = dict(name_or_path), "<dict>"
    else:
        path = recipe_path(name_or_path)
        raw, source = yaml.safe_load(path.read_text()) or {}, str(path)
        if not isinstance(raw, dict):
            raise RecipeError(f"recipe {source} must be a YAML mapping, got {type(raw).__name__}")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(Recipe.model_fields))
    if unknown:
        raise RecipeError(f"recipe overrides name unknown fields {unknown}; known: {sorted(Recipe.model_fields)}")
    raw.update(overrides)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(f"invalid recipe {source}: {exc}") from exc
