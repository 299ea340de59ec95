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

import math
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
    checkpoints_per_run: int | None = Field(
        default=None,
        gt=0,
        description="durable checkpoints spread evenly over the run: one every ceil(max_steps / N) optimizer steps, "
        "resolved once the Trainer has computed max_steps (so a 40-step 1k run and a 1,200-step 30k run both leave "
        "N restart points); a recipe sets this or save_steps",
    )
    save_steps: int | None = Field(
        default=None, gt=0, description="a durable checkpoint every N optimizer steps, whatever the run's length"
    )
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
        if self.save_steps is None and self.checkpoints_per_run is None:
            raise ValueError("set a checkpoint interval: checkpoints_per_run (per run) or save_steps (absolute)")
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

    def resolve_save_steps(self, max_steps: int) -> int:
        """Optimizer steps between durable checkpoints for a run of `max_steps` steps."""
        if self.save_steps is not None:
            return self.save_steps
        if max_steps < 1:
            raise RecipeError(f"recipe {self.name!r}: cannot spread checkpoints over a run of {max_steps} steps")
        return max(1, math.ceil(max_steps / self.checkpoints_per_run))

    def bf16_enabled(self, hardware_supports_bf16: bool | None) -> bool:
        """`precision` resolved: auto follows the hardware, bf16/fp32 are taken as written (bf16 runs on CPU too)."""
        if self.precision == "auto":
            return bool(hardware_supports_bf16)
        return self.precision == "bf16"

    def to_sft_config(self, output_dir: str, world_size: int, *, use_bf16: bool | None = None, **extra: Any):
        """The TRL `SFTConfig` for this recipe on `world_size` devices, writing checkpoints under `output_dir`.

        `use_bf16` resolves `precision: auto` (the entrypoint passes what the hardware supports); `extra` are
        TrainingArguments set by the entrypoint rather than the recipe (report_to, logging_dir, ...).
        """
        from trl import SFTConfig  # heavy import, only where a config is built

        bf16 = self.bf16_enabled(use_bf16)
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
            # The exact interval needs max_steps, which the Trainer computes from the data: this ratio of the run is
            # what it starts from, and `CheckpointIntervalCallback` sets `resolve_save_steps(max_steps)` on
            # train begin (a ratio alone can round up by a step through floating point).
            save_steps=self.save_steps if self.save_steps is not None else 1.0 / self.checkpoints_per_run,
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


# A layer (a derived recipe, or overrides) that sets the checkpoint interval in one form replaces the other form.
_INTERVAL_KEYS = ("checkpoints_per_run", "save_steps")
BASE_KEY = "base"


def _layer(raw: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """`layer`'s fields over `raw`'s."""
    merged = dict(raw)
    for key in _INTERVAL_KEYS:
        if key in layer:
            for other in _INTERVAL_KEYS:
                merged.pop(other, None)
    merged.update(layer)
    return merged


def _read_recipe_yaml(name_or_path: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """The raw fields of a recipe file with its `base:` chain resolved (the base's fields, then this file's)."""
    path = recipe_path(name_or_path)
    source = str(path.resolve())
    if source in chain:
        raise RecipeError(f"recipe {path} inherits from itself through `base:` ({' -> '.join((*chain, source))})")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {path} must be a YAML mapping, got {type(raw).__name__}")
    base = raw.pop(BASE_KEY, None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base:
        raise RecipeError(f"recipe {path}: `base` must name a bundled recipe or a YAML path, got {base!r}")
    if "name" not in raw:
        raise RecipeError(f"recipe {path}: a derived recipe needs its own `name` (its base is {base!r})")
    if base.endswith((".yaml", ".yml")) and not Path(base).is_absolute():
        base = str(path.parent / base)  # relative to the derived file
    return _layer(_read_recipe_yaml(base, (*chain, source)), raw)


def load_recipe(name_or_path: str | dict, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load and validate a recipe (bundled name, YAML path, or an already-parsed dict), applying `overrides`.

    A recipe file may start from another one with `base: <name or path>` and set only what differs (the rehearsal
    recipes shrink the production ones this way); a dict may do the same.
    """
    if isinstance(name_or_path, dict):
        raw, source = dict(name_or_path), "<dict>"
        base = raw.pop(BASE_KEY, None)
        if base is not None:
            raw = _layer(_read_recipe_yaml(base), raw)
    else:
        raw, source = _read_recipe_yaml(name_or_path), str(recipe_path(name_or_path))
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(Recipe.model_fields))
    if unknown:
        raise RecipeError(f"recipe overrides name unknown fields {unknown}; known: {sorted(Recipe.model_fields)}")
    raw = _layer(raw, overrides)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(f"invalid recipe {source}: {exc}") from exc
