"""SFT of a student on teacher traces: `python -m valley_assets.training.sft`.

One script for every place it runs: a local subprocess (demo), a container, a Kubernetes pod (under accelerate /
torchrun for multi-GPU). Launched by Dagster it reads its parameters from the dagster-pipes context (`extras`) and
reports back through pipes; by hand it reads `--params params.json` (see `session.py`).

Parameters (`extras`):
    recipe                  recipe name, YAML path, or a full recipe dict (valley_assets/training/recipes)
    recipe_overrides        optional dict of recipe fields to override (e.g. {"max_length": 640})
    train_file              JSONL of {"messages": [system?, user, assistant]}; local path or fsspec URL
    base_model              local folder or hub id, loaded with `from_pretrained` either way
    output_dir              local folder or fsspec URL; layout in `checkpoints.py`
    resume_from_checkpoint  "auto" (default): continue from the newest complete checkpoint; null: start over

What is trained, and why:
- Loss on the assistant turn only (`assistant_only_loss`), with the student's own chat template, patched with
  `{% generation %}` markers where the hub template lacks them (`chat_template.py`).
- Every trained sequence ends with EOS inside the loss mask, so the student learns to stop (R1 traces are long;
  a student that never emits EOS runs into the generation budget and scores zero).
- `<think>` / `</think>` stay plain text. Qwen2.5 and Llama 3.1 tokenizers have no such tokens; adding them as special
  tokens would add two randomly initialised embedding rows (and, for tied/untied heads, output rows) that the student
  must learn from scratch, change the vocabulary the evaluation backends (vLLM) load, and make the students differ from
  the paper's, which trains on the traces as text. As text they cost a few sub-word tokens each, and the pool filter
  and metrics find them with plain string search (`valley_assets.science.text`).
- Examples longer than the recipe's `max_length` (prompt + trace + EOS) are dropped, not truncated: a truncated trace
  has no answer and no EOS, and would teach the student to ramble. The count is reported.
- bf16 on a GPU that supports it, fp32 on CPU; gradient checkpointing and padding-free batches from the recipe.

Reports (pipes metadata on the materialization): loss curve per logging step, tokens seen, wall time, steps, final
loss, resumed-from step, examples used/dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from valley_assets.training import checkpoints as ckpt
from valley_assets.training.chat_template import (
    TrainingDataError,
    tokenize_conversation,
    training_chat_template,
    validate_messages,
)
from valley_assets.training.recipe import Recipe, load_recipe
from valley_assets.training.session import EntrypointSession, global_rank, open_session


class ParamsError(ValueError):
    """Entrypoint parameters that are missing or malformed; the message names the key."""


# --- parameters ---------------------------------------------------------------------------------------------------
def parse_params(extras: dict[str, Any]) -> dict[str, Any]:
    """Validate the entrypoint parameters; return them with defaults filled in."""
    for key in ("recipe", "train_file", "base_model", "output_dir"):
        if not extras.get(key):
            raise ParamsError(f"missing parameter {key!r} (got keys {sorted(extras)})")
    if not isinstance(extras["recipe"], (str, dict)):
        raise ParamsError(f"parameter 'recipe' must be a recipe name, a YAML path or a dict, got {extras['recipe']!r}")
    overrides = extras.get("recipe_overrides") or {}
    if not isinstance(overrides, dict):
        raise ParamsError(f"parameter 'recipe_overrides' must be a dict, got {overrides!r}")
    resume = extras.get("resume_from_checkpoint", "auto")
    if resume not in ("auto", None, False):
        raise ParamsError(f"parameter 'resume_from_checkpoint' must be 'auto' or null, got {resume!r}")
    return {
        "recipe": load_recipe(extras["recipe"], overrides),
        "train_file": str(extras["train_file"]),
        "base_model": str(extras["base_model"]),
        "output_dir": str(extras["output_dir"]).rstrip("/"),
        "resume": resume == "auto",
    }


# --- data ---------------------------------------------------------------------------------------------------------
def load_training_rows(train_file: str):
    """The train file as a `datasets.Dataset` (local path or fsspec URL, same `load_dataset` call)."""
    from datasets import load_dataset

    dataset = load_dataset("json", data_files=train_file, split="train")
    if "messages" not in dataset.column_names:
        raise TrainingDataError(f"{train_file}: rows need a 'messages' field, found columns {dataset.column_names}")
    if len(dataset) == 0:
        raise TrainingDataError(f"{train_file}: no rows")
    return dataset


def tokenize_rows(dataset, tokenizer, chat_template: str, max_length: int, num_proc: int | None):
    """Tokenize every row (assistant mask + EOS); drop rows over `max_length`. Returns (dataset, n_dropped)."""

    def encode(row, index):
        messages = validate_messages(row["messages"], index)
        encoded = tokenize_conversation(tokenizer, messages, chat_template, index)
        return {**encoded, "n_tokens": len(encoded["input_ids"]), "n_trained": sum(encoded["assistant_masks"])}

    # `messages` is kept: TRL checks that the dataset is conversational before honouring assistant_only_loss, and
    # skips its own tokenization because `input_ids` is present. It is dropped from batches (not a model input).
    tokenized = dataset.map(encode, with_indices=True, num_proc=num_proc, desc="tokenizing")
    kept = tokenized.filter(lambda n: n <= max_length, input_columns="n_tokens", num_proc=num_proc)
    dropped = len(tokenized) - len(kept)
    if len(kept) == 0:
        longest = max(tokenized["n_tokens"])
        raise TrainingDataError(f"every example is longer than max_length={max_length} tokens (longest: {longest})")
    return kept, dropped


# --- hardware -----------------------------------------------------------------------------------------------------
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


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


# --- callbacks ----------------------------------------------------------------------------------------------------
class PipesLogCallback(TrainerCallback):
    """Forward every logging step (loss, lr, tokens) to the session log as it happens."""

    def __init__(self, session: EntrypointSession):
        self.session = session

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            fields = {k: logs[k] for k in ("loss", "learning_rate", "grad_norm", "num_input_tokens_seen") if k in logs}
            self.session.log(f"step {state.global_step}/{state.max_steps} " + json.dumps(fields, default=float))


class DurableCheckpointCallback(TrainerCallback):
    """After the Trainer saved `checkpoint-N` (weights, optimizer, scheduler, RNG, state): mark it complete, mirror it.

    `on_save` runs after `_save_checkpoint` returned, so the marker is written only when every file is on disk.
    """

    def __init__(self, session: EntrypointSession, remote_steps_dir: str | None):
        self.session = session
        self.remote_steps_dir = remote_steps_dir

    def on_save(self, args, state, control, **kwargs):
        barrier()  # sharded (FSDP/ZeRO) saves: every rank has written its part
        if global_rank() == 0:
            local = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            ckpt.mark_complete(local, {"step": state.global_step})
            if self.remote_steps_dir is not None:
                ckpt.upload_checkpoint(local, ckpt.join(self.remote_steps_dir, f"checkpoint-{state.global_step}"))
                kept = {step for step, _, done in ckpt.list_checkpoints(args.output_dir) if done}
                ckpt.prune_remote_checkpoints(self.remote_steps_dir, kept)
            self.session.log(f"checkpoint saved at step {state.global_step}")
        barrier()


# --- checkpoints --------------------------------------------------------------------------------------------------
def find_resume_checkpoint(local_steps: str, remote_steps: str | None) -> str | None:
    """The newest complete checkpoint, local or remote (downloaded); incomplete local ones are deleted first."""
    ckpt.remove_incomplete_checkpoints(local_steps)
    local = ckpt.latest_complete_checkpoint(local_steps)
    if remote_steps is None:
        return local
    remote = ckpt.latest_complete_checkpoint(remote_steps)
    local_step = ckpt.checkpoint_step(local) if local else -1
    if remote is not None and ckpt.checkpoint_step(remote) > local_step:
        name = f"checkpoint-{ckpt.checkpoint_step(remote)}"
        return ckpt.download_checkpoint(remote, os.path.join(local_steps, name))
    return local


def loss_curve(log_history: list[dict]) -> list[dict]:
    """One point per logging step (restored from the checkpoint on resume, so the curve spans restarts)."""
    return [
        {"step": entry["step"], "loss": round(float(entry["loss"]), 6), **(
            {"tokens": int(entry["num_input_tokens_seen"])} if "num_input_tokens_seen" in entry else {}
        )}
        for entry in log_history
        if "loss" in entry
    ]


# --- the run ------------------------------------------------------------------------------------------------------
def train(params: dict[str, Any], session: EntrypointSession) -> dict[str, Any]:
    started = time.monotonic()
    recipe: Recipe = params["recipe"]
    output_dir: str = params["output_dir"]
    remote = ckpt.is_remote(output_dir)

    # 1. Is this exact run already done? Otherwise make output_dir ours (state from other inputs is deleted).
    fingerprint = ckpt.run_fingerprint(
        recipe.model_dump(), params["base_model"], ckpt.file_sha256(params["train_file"])
    )
    if ckpt.is_complete_checkpoint(output_dir) and ckpt.read_run_fingerprint(output_dir) == fingerprint:
        summary = ckpt.read_summary(output_dir)
        session.log(f"{output_dir} already holds the finished model for these inputs; nothing to train")
        return {**summary, "skipped_already_complete": True}
    if global_rank() == 0:
        owned = ckpt.claim_output_dir(output_dir, fingerprint)
        if not owned:
            session.log(f"{output_dir}: starting fresh for inputs {fingerprint[:12]}")
    barrier()

    # 2. Where the Trainer writes: output_dir/_steps, or a local staging folder mirrored to the remote URL.
    remote_steps = ckpt.join(output_dir, ckpt.STEPS_DIR) if remote else None
    if remote:
        staging_root = os.environ.get("VALLEY_STAGING_DIR") or os.path.join(tempfile.gettempdir(), "valley-sft")
        local_steps = os.path.join(staging_root, fingerprint[:16], ckpt.STEPS_DIR)
    else:
        local_steps = os.path.join(output_dir, ckpt.STEPS_DIR)
    os.makedirs(local_steps, exist_ok=True)
    resume_from = find_resume_checkpoint(local_steps, remote_steps) if params["resume"] and global_rank() == 0 else None
    barrier()
    if params["resume"] and global_rank() != 0:
        resume_from = ckpt.latest_complete_checkpoint(local_steps)  # rank 0 downloaded it (shared staging volume)
    resumed_step = ckpt.checkpoint_step(resume_from) if resume_from else 0
    session.log(f"resuming from {resume_from} (step {resumed_step})" if resume_from else "no checkpoint to resume")

    # 3. Student and data.
    from valley_assets.models import local_model_dir

    base_model = local_model_dir(params["base_model"])  # an ablation starts from a checkpoint that may be on s3://
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    template = training_chat_template(tokenizer, recipe.chat_template)
    tokenizer.chat_template = template  # renders as the original; saved with the model, so inference matches
    use_bf16 = bf16_supported()
    dtype = torch.bfloat16 if (recipe.precision == "bf16" or (recipe.precision == "auto" and use_bf16)) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        base_model, dtype=dtype, attn_implementation=resolve_attn_implementation(recipe)
    )
    rows = load_training_rows(params["train_file"])
    dataset, dropped = tokenize_rows(rows, tokenizer, template, recipe.max_length, recipe.dataset_num_proc)
    tokens_per_epoch = int(sum(dataset["n_tokens"]))
    trained_tokens_per_epoch = int(sum(dataset["n_trained"]))
    dataset = dataset.remove_columns(["n_tokens", "n_trained"])
    session.log(
        f"{len(dataset)} examples ({dropped} longer than {recipe.max_length} tokens dropped), "
        f"{tokens_per_epoch} tokens per epoch, {trained_tokens_per_epoch} of them in the loss"
    )

    # 4. Train (TRL picks up packing / padding-free / assistant masks from the config).
    from trl import SFTTrainer

    config = recipe.to_sft_config(local_steps, world_size(), use_bf16=use_bf16, report_to="none", disable_tqdm=True)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[PipesLogCallback(session), DurableCheckpointCallback(session, remote_steps)],
    )
    result = trainer.train(resume_from_checkpoint=resume_from)

    # 5. Publish the final model: staged inside output_dir (same filesystem) or locally, then moved/uploaded,
    #    summary, and `_COMPLETE` last.
    curve = loss_curve(trainer.state.log_history)
    summary = {
        "steps": int(trainer.state.global_step),
        "epochs": float(trainer.state.epoch or 0.0),
        "final_loss": curve[-1]["loss"] if curve else float("nan"),
        "train_loss_mean": float(result.training_loss),
        "loss_curve": curve,
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "tokens_per_epoch": tokens_per_epoch,
        "trained_tokens_per_epoch": trained_tokens_per_epoch,
        "examples": len(dataset),
        "examples_dropped_too_long": dropped,
        "resumed_from_step": resumed_step,
        "wall_time_s": round(time.monotonic() - started, 2),
        "world_size": world_size(),
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "precision": "bf16" if config.bf16 else "fp32",
        "recipe": recipe.name,
        "base_model": params["base_model"],
        "fingerprint": fingerprint,
    }
    stage = os.path.join(output_dir if not remote else os.path.dirname(local_steps), ".publish-tmp")
    trainer.save_model(stage)  # all ranks take part (gathers sharded weights); rank 0 writes
    if global_rank() == 0:
        ckpt.publish_final(stage, output_dir, summary)
        shutil.rmtree(stage, ignore_errors=True)
        # Intermediate checkpoints only serve resumption; for a 7B student each holds ~100 GB of optimizer state.
        ckpt.remove_tree(ckpt.join(output_dir, ckpt.STEPS_DIR))
        if remote:
            shutil.rmtree(os.path.dirname(local_steps), ignore_errors=True)
        session.log(f"published the final model to {output_dir} after {summary['steps']} steps")
    barrier()
    return summary


def metadata_for_dagster(summary: dict[str, Any], output_dir: str) -> dict[str, Any]:
    """The summary as materialization metadata (floats kept finite: NaN is not JSON)."""
    metadata = {k: v for k, v in summary.items() if k != "fingerprint"}
    if isinstance(metadata.get("final_loss"), float) and not math.isfinite(metadata["final_loss"]):
        metadata["final_loss"] = None
    metadata["output_dir"] = output_dir
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m valley_assets.training.sft", description=__doc__.split("\n")[0])
    parser.add_argument("--params", help="JSON file with the parameters, when not launched by Dagster")
    args, _ = parser.parse_known_args(argv)  # pipes may add its own CLI flags
    with open_session(args.params) as session:
        params = parse_params(session.extras)
        summary = train(params, session)
        session.report(metadata_for_dagster(summary, params["output_dir"]))


if __name__ == "__main__":
    main()
