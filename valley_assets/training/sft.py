"""SFT of a student on teacher traces: `python -m valley_assets.training.sft`.

One script for every place it runs: a local subprocess (demo), a container, a Kubernetes pod (under accelerate /
torchrun for multi-GPU). Parameters, logs and the
report follow the contract of every launched module (`valley_assets.entrypoint`): launched by Dagster, the
parameters are the dagster-pipes extras and the summary comes back as the materialization; by hand,
`--params params.json` and one `{"valley_result": ...}` line on stdout.

Parameters (`valley_assets.training.params.SFTParams`):
    recipe                  the resolved recipe, every field (the assets resolve it once and ship it; by hand, a
                            bundled recipe name or a YAML path)
    train_file              JSONL of {"messages": [system?, user, assistant]}; local path or fsspec URL
    base_model              local folder or hub id, loaded with `from_pretrained` either way
    output_dir              local folder or fsspec URL; layout in `checkpoints.py`
    resume_from_checkpoint  "auto" (default): continue from the newest complete checkpoint; null: start over
    report_to               "none" (default: Dagster metadata only) or a list of "tensorboard" / "wandb" / "mlflow";
                            credentials and endpoints only from the environment (WANDB_API_KEY, MLFLOW_TRACKING_URI);
                            local tracker files go to <output_dir>/logs/ (uploaded with every durable checkpoint)

Distributed runs (`accelerate launch --config_file accelerate/fsdp2.yaml ...`):
- FSDP2 on GPUs (NCCL) and on CPU-only machines (gloo, `distributed.py`), the same code path: intermediate
  checkpoints stay SHARDED_STATE_DICT (resumable, each rank writes its shard), the final model is gathered into one
  safetensors folder (`save_final_model`).
- Checkpoint interval: the recipe's `checkpoints_per_run`, resolved against the run's max_steps.
- Remote output_dir: each machine's first rank uploads its machine's part of every checkpoint in the background
  (one upload in flight; the next save and the publication wait for it; a failure fails the run); the checkpoint is
  durable when rank 0 has seen every machine's part and written `_COMPLETE`. A restart resumes from the newest
  durable checkpoint, downloaded on every machine; rank 0 decides the step and broadcasts it.

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

The script reads top to bottom (`train`); its parts live beside it: `sft_data.py` (train file -> tokenised dataset),
`sft_trainer.py` (precision, trackers, callbacks, loss curve, final model), `durable_checkpoints.py` (staging,
upload, resume), `distributed.py` (process group, FSDP on CPU, ranks), `checkpoints.py` (the output_dir layout).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from valley_assets.entrypoint import EntrypointSession, ParamsError, global_rank, run_entrypoint
from valley_assets.entrypoint import parse_params as parse_entrypoint_params
from valley_assets.model_files import local_model_dir
from valley_assets.training import checkpoints as ckpt
from valley_assets.training import distributed
from valley_assets.training.chat_template import training_chat_template
from valley_assets.training.distributed import barrier, num_nodes, world_size
from valley_assets.training.durable_checkpoints import (
    CheckpointUploader,
    DurableCheckpointCallback,
    probe_staging,
    resume_checkpoint,
)
from valley_assets.training.params import SFTParams
from valley_assets.training.recipe import Recipe
from valley_assets.training.sft_data import prepare_training_data
from valley_assets.training.sft_trainer import (
    CheckpointIntervalCallback,
    PipesLogCallback,
    bf16_supported,
    configure_trackers,
    loss_curve,
    resolve_attn_implementation,
    save_final_model,
)

__all__ = ["main", "parse_params", "run", "train"]


def parse_params(extras: dict[str, Any] | SFTParams) -> SFTParams:
    """The entrypoint's parameters validated (`ParamsError` naming the field)."""
    return parse_entrypoint_params(SFTParams, extras)


# --- the run ------------------------------------------------------------------------------------------------------
def train(params: SFTParams, session: EntrypointSession) -> dict[str, Any]:
    started = time.monotonic()
    recipe: Recipe = params.recipe
    output_dir: str = params.output_dir
    remote = ckpt.is_remote(output_dir)
    use_bf16 = recipe.bf16_enabled(bf16_supported())
    # The process group exists from here on, so the barriers below really synchronise the ranks (rank 0 claims the
    # output folder and downloads the checkpoint to resume before the others look for it).
    configured_state = distributed.init_process_group(
        "bf16" if use_bf16 else os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    )

    # 1. Is this exact run already done? Otherwise make output_dir ours (state from other inputs is deleted).
    fingerprint = params.run_fingerprint()
    if (summary := params.finished_run(fingerprint)) is not None:
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
    # Tracker logs (TensorBoard, MLflow files) live beside the steps and are copied into output_dir/logs with every
    # durable checkpoint and at publication, so they outlive the pod.
    logs_dir = os.path.join(os.path.dirname(local_steps), ckpt.LOGS_DIR)
    staging = probe_staging(os.path.dirname(local_steps))
    if not staging.shared and not remote:
        raise ParamsError(
            f"output_dir {output_dir} is a local path but the {num_nodes()} machines of this run do not share it: "
            "a multi-machine run needs an object-store output_dir (s3://, gs://) or a shared volume"
        )
    session.log(f"checkpoint staging: {'one disk shared by every machine' if staging.shared else 'one disk per machine'}")
    resume_from = resume_checkpoint(local_steps, remote_steps, staging) if params.resume else None
    resumed_step = ckpt.checkpoint_step(resume_from) if resume_from else 0
    session.log(f"resuming from {resume_from} (step {resumed_step})" if resume_from else "no checkpoint to resume")

    # 3. Student and data.
    base_model = local_model_dir(params.base_model)  # an ablation starts from a checkpoint that may be on s3://
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    template = training_chat_template(tokenizer, recipe.chat_template)
    tokenizer.chat_template = template  # renders as the original; saved with the model, so inference matches
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        base_model, dtype=dtype, attn_implementation=resolve_attn_implementation(recipe)
    )
    data = prepare_training_data(params.train_file, tokenizer, template, recipe.max_length, recipe.dataset_num_proc)
    session.log(
        f"{len(data.dataset)} examples ({data.dropped} longer than {recipe.max_length} tokens dropped), "
        f"{data.tokens_per_epoch} tokens per epoch, {data.trained_tokens_per_epoch} of them in the loss"
    )

    # 4. Train (TRL picks up packing / padding-free / assistant masks from the config).
    from trl import SFTTrainer

    trackers = configure_trackers(params.report_to, logs_dir)
    config = recipe.to_sft_config(
        local_steps, world_size(), use_bf16=use_bf16, report_to=trackers, disable_tqdm=True,
        use_cpu=not distributed.has_accelerator(),
        **({"accelerator_config": {"use_configured_state": True}} if configured_state else {}),
    )
    uploader = None
    if remote:
        uploader = CheckpointUploader(
            local_steps, remote_steps, keep=recipe.save_total_limit, session=session,
            logs_dir=logs_dir if trackers != ["none"] else None,
            remote_logs_dir=ckpt.join(output_dir, ckpt.LOGS_DIR), staging=staging,
        )
    interval = CheckpointIntervalCallback(recipe, session)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=data.dataset,
        processing_class=tokenizer,
        callbacks=[PipesLogCallback(session), interval, DurableCheckpointCallback(session, uploader, staging)],
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
        "tokens_per_epoch": data.tokens_per_epoch,
        "trained_tokens_per_epoch": data.trained_tokens_per_epoch,
        "examples": len(data.dataset),
        "examples_dropped_too_long": data.dropped,
        "resumed_from_step": resumed_step,
        "wall_time_s": round(time.monotonic() - started, 2),
        "train_runtime_s": round(float(result.metrics.get("train_runtime", 0.0)), 3),  # this attempt's training loop
        "world_size": world_size(),
        "distributed_type": str(trainer.accelerator.distributed_type).rsplit(".", 1)[-1],
        "fsdp": bool(trainer.is_fsdp_enabled),
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "precision": "bf16" if config.bf16 else "fp32",
        "recipe": recipe.name,
        "base_model": params.base_model,
        "fingerprint": fingerprint,
        "save_steps": interval.save_steps,
        "durable_checkpoints": list(uploader.durable_steps) if uploader is not None else [],
        "report_to": trackers,
    }
    stage = os.path.join(output_dir if not remote else os.path.dirname(local_steps), ".publish-tmp")
    save_final_model(trainer, stage, dtype)
    if global_rank() == 0:
        if remote and trackers != ["none"] and os.path.isdir(logs_dir):
            ckpt.upload_tree(logs_dir, ckpt.join(output_dir, ckpt.LOGS_DIR))
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


def run(params: SFTParams, session: EntrypointSession) -> dict[str, Any]:
    return metadata_for_dagster(train(params, session), params.output_dir)


def main(argv: list[str] | None = None) -> int:
    return run_entrypoint("valley_assets.training.sft", __doc__.split("\n")[0], SFTParams, run, argv)


if __name__ == "__main__":
    main()
