"""The Trainer's side of the SFT run: precision and attention for this hardware, experiment trackers, the callbacks
that report progress and set the checkpoint interval, and what is read back from the Trainer at the end (the loss
curve, the final model gathered into one folder). The checkpoints' durability is `durable_checkpoints.py`.
"""

from __future__ import annotations

import json
import os

import torch
from transformers import TrainerCallback

from valley_assets.entrypoint import EntrypointSession, ParamsError
from valley_assets.training.recipe import Recipe


def configure_trackers(report_to: list[str], logs_dir: str) -> list[str]:
    """Point the trackers' local files under `logs_dir` (uploaded with the run) and check their credentials."""
    if report_to == ["none"]:
        return report_to
    os.makedirs(logs_dir, exist_ok=True)
    if "tensorboard" in report_to:
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", os.path.join(logs_dir, "tensorboard"))
    if "wandb" in report_to:
        if not os.environ.get("WANDB_API_KEY") and os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
            raise ParamsError(
                "report_to includes 'wandb' but WANDB_API_KEY is not set in the environment (set it from a Secret, "
                "or WANDB_MODE=offline to write runs under output_dir/logs/wandb)"
            )
        os.environ.setdefault("WANDB_DIR", logs_dir)
    if "mlflow" in report_to:
        # No tracking server configured: MLflow's file store, kept under output_dir/logs/mlruns.
        os.environ.setdefault("MLFLOW_TRACKING_URI", "file://" + os.path.join(os.path.abspath(logs_dir), "mlruns"))
    return report_to


def bf16_supported() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_attn_implementation(recipe: Recipe) -> str:
    if recipe.attn_implementation != "auto":
        return recipe.attn_implementation
    if torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


class PipesLogCallback(TrainerCallback):
    """Forward every logging step (loss, lr, tokens) to the session log as it happens."""

    def __init__(self, session: EntrypointSession):
        self.session = session

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            fields = {k: logs[k] for k in ("loss", "learning_rate", "grad_norm", "num_input_tokens_seen") if k in logs}
            self.session.log(f"step {state.global_step}/{state.max_steps} " + json.dumps(fields, default=float))


class CheckpointIntervalCallback(TrainerCallback):
    """Set the checkpoint interval from the run's own length once the Trainer knows it (`Recipe.resolve_save_steps`)."""

    def __init__(self, recipe: Recipe, session: EntrypointSession):
        self.recipe = recipe
        self.session = session
        self.save_steps: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.save_steps = self.recipe.resolve_save_steps(state.max_steps)
        state.save_steps = self.save_steps
        self.session.log(f"a durable checkpoint every {self.save_steps} of {state.max_steps} optimizer steps")


def save_final_model(trainer, stage_dir: str, dtype: torch.dtype) -> None:
    """The trained weights as one Hugging Face folder (safetensors, `dtype`) written by rank 0; every rank must call it.

    `Trainer.save_model` writes nothing under FSDP unless the plugin's state-dict type is FULL_STATE_DICT
    (transformers 5), while the intermediate checkpoints must stay SHARDED_STATE_DICT (each rank writes its shard, so
    a 7B checkpoint never has to fit one host's memory, and resuming reshards). So the full state dict is gathered
    here explicitly: `Accelerator.get_state_dict` is a collective under FSDP2 (`get_model_state_dict` with
    full_state_dict and cpu_offload) and ZeRO-3, and a plain `state_dict()` otherwise. FSDP keeps fp32 master weights
    under bf16 mixed precision; the published model is cast back to the dtype the student was loaded in.
    """
    state_dict = trainer.accelerator.get_state_dict(trainer.model)
    if not trainer.args.should_save:
        return
    state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    model = trainer.accelerator.unwrap_model(trainer.model)
    os.makedirs(stage_dir, exist_ok=True)
    model.save_pretrained(stage_dir, state_dict=state_dict)
    trainer.processing_class.save_pretrained(stage_dir)


def loss_curve(log_history: list[dict]) -> list[dict]:
    """One point per logging step (restored from the checkpoint on resume, so the curve spans restarts)."""
    return [
        {"step": entry["step"], "loss": round(float(entry["loss"]), 6), **(
            {"tokens": int(entry["num_input_tokens_seen"])} if "num_input_tokens_seen" in entry else {}
        )}
        for entry in log_history
        if "loss" in entry
    ]

