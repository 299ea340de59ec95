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
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from valley_assets.entrypoint import EntrypointSession, ParamsError, global_rank, run_entrypoint
from valley_assets.entrypoint import parse_params as parse_entrypoint_params
from valley_assets.model_files import local_model_dir
from valley_assets.training import checkpoints as ckpt
from valley_assets.training import distributed
from valley_assets.training.chat_template import (
    TrainingDataError,
    tokenize_conversation,
    training_chat_template,
    validate_messages,
)
from valley_assets.training.params import TRACKERS, SFTParams
from valley_assets.training.recipe import Recipe

__all__ = ["TRACKERS", "EntrypointSession", "ParamsError", "SFTParams", "main", "parse_params", "train"]


def parse_params(extras: dict[str, Any] | SFTParams) -> SFTParams:
    """The entrypoint's parameters validated (`ParamsError` naming the field)."""
    return parse_entrypoint_params(SFTParams, extras)


# --- experiment trackers --------------------------------------------------------------------------------------------
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


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def node_rank() -> int:
    """This machine's index in the run (torchrun's GROUP_RANK; accelerate passes --machine_rank through to it)."""
    return int(os.environ.get("GROUP_RANK", os.environ.get("NODE_RANK", "0")))


def num_nodes() -> int:
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return max(1, world_size() // max(1, local_world))


def broadcast_from_rank0(value):
    """`value` as rank 0 has it, on every rank (picklable objects)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


class Staging:
    """Where the ranks' checkpoint files land: one disk shared by every machine (a ReadWriteMany volume, or a single
    machine), or one local disk per machine (pods with their own emptyDir / node disk).

    On a shared disk global rank 0 uploads and downloads whole checkpoints. On per-machine disks each machine holds only
    its own ranks' shards, so the first rank of every machine uploads its part and downloads the whole checkpoint to
    resume; a checkpoint is durable once every machine's part is up.
    """

    def __init__(self, shared: bool):
        self.shared = shared

    @property
    def disks(self) -> int:
        return 1 if self.shared else num_nodes()

    @property
    def is_writer(self) -> bool:
        """This process uploads/downloads for its disk."""
        return global_rank() == 0 if self.shared else local_rank() == 0

    @property
    def part(self) -> str:
        return "node-0" if self.shared else f"node-{node_rank()}"


def probe_staging(folder: str) -> Staging:
    """Find out whether every machine sees the same `folder`: each machine's first rank drops a probe file named by a
    token from rank 0, and rank 0 looks for all of them. Collective: every rank calls it."""
    if num_nodes() == 1:
        return Staging(shared=True)
    import uuid

    token = broadcast_from_rank0(uuid.uuid4().hex if global_rank() == 0 else None)
    probe = os.path.join(folder, f".probe-{token}-node-{node_rank()}")
    if local_rank() == 0:
        with open(probe, "w"):
            pass
    barrier()
    seen = all(os.path.exists(os.path.join(folder, f".probe-{token}-node-{k}")) for k in range(num_nodes()))
    shared = broadcast_from_rank0(seen)
    barrier()
    if local_rank() == 0:
        os.remove(probe)
    return Staging(shared=shared)


# --- callbacks ----------------------------------------------------------------------------------------------------
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


class UploadError(RuntimeError):
    """A checkpoint (or the training logs) could not be copied to the run's remote output_dir."""


class CheckpointUploader:
    """Copies this machine's part of each checkpoint to the remote `_steps/` folder on a background thread.

    Runs on the first local rank of every machine (a machine's ranks share its disk), or on rank 0 alone when
    every machine writes to one shared volume (`Staging`). One upload is in flight at a
    time: the next save, and the final publication, wait for it (`wait`), and its failure is raised there, failing
    the run with the checkpoint and the cause named. The coordinator (global rank 0) writes the remote `_COMPLETE`
    only after every machine's part marker is there, so a remote checkpoint counts as durable only once all of it
    is uploaded. Training never waits for the network except when two saves would overlap.
    """

    def __init__(self, local_steps: str, remote_steps: str, keep: int, session: EntrypointSession,
                 logs_dir: str | None = None, remote_logs_dir: str | None = None, parts_timeout_s: float = 3600.0,
                 staging: Staging | None = None):
        import threading

        self._threading = threading
        self.local_steps = local_steps
        self.remote_steps = remote_steps
        self.keep = keep
        self.session = session
        self.logs_dir = logs_dir
        self.remote_logs_dir = remote_logs_dir
        self.parts_timeout_s = parts_timeout_s
        staging = staging or Staging(shared=num_nodes() == 1)
        self.coordinator = global_rank() == 0
        self.part = staging.part
        self.nodes = staging.disks
        self._thread = None
        self._step: int | None = None
        self._error: BaseException | None = None
        self.durable_steps: list[int] = []

    def start(self, step: int) -> None:
        self.wait()
        self._step = step
        self._thread = self._threading.Thread(target=self._upload, args=(step,), name=f"upload-{step}", daemon=True)
        self._thread.start()

    def _upload(self, step: int) -> None:
        name = f"checkpoint-{step}"
        local, remote = os.path.join(self.local_steps, name), ckpt.join(self.remote_steps, name)
        try:
            started = time.monotonic()
            ckpt.upload_checkpoint_part(local, remote, self.part)
            if self.coordinator:
                ckpt.wait_for_parts(remote, {f"node-{i}" for i in range(self.nodes)}, self.parts_timeout_s)
                ckpt.mark_complete(remote, {"step": step})
                self.durable_steps.append(step)
                kept = set(sorted(s for s, _, done in ckpt.list_checkpoints(self.remote_steps) if done)[-self.keep:])
                ckpt.prune_remote_checkpoints(self.remote_steps, kept)
                if self.logs_dir and self.remote_logs_dir:
                    ckpt.upload_tree(self.logs_dir, self.remote_logs_dir)
                self.session.log(f"checkpoint-{step} is durable at {remote} ({time.monotonic() - started:.1f} s upload)")
            else:
                # The Trainer rotates checkpoints on the coordinator's machine only; other machines drop their
                # shards of older checkpoints here once this one is uploaded.
                for _step, path, _ in ckpt.list_checkpoints(self.local_steps)[:-self.keep]:
                    shutil.rmtree(path, ignore_errors=True)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the training thread by wait()
            self._error = exc

    def wait(self) -> None:
        """Block until the upload in flight (if any) finished; raise UploadError if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise UploadError(
                f"uploading checkpoint-{self._step} to {self.remote_steps} failed: {type(error).__name__}: {error}"
            ) from error


class DurableCheckpointCallback(TrainerCallback):
    """After the Trainer saved `checkpoint-N` (weights, optimizer, scheduler, RNG, state): mark it, mirror it.

    `on_save` runs after `_save_checkpoint` returned on this rank; the barrier makes it true for every rank (FSDP
    writes one shard per rank), so the local `_COMPLETE` is written only when every file is on disk. For a remote
    output_dir each machine's first rank then starts uploading its part in the background (`CheckpointUploader`);
    before the next save writes anything, `on_step_end` waits for that upload.
    """

    def __init__(self, session: EntrypointSession, uploader: CheckpointUploader | None, staging: Staging):
        self.session = session
        self.uploader = uploader
        self.staging = staging

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save and self.uploader is not None and self.staging.is_writer:
            self.uploader.wait()  # one upload in flight; the Trainer is about to write (and rotate) checkpoints

    def on_save(self, args, state, control, **kwargs):
        barrier()  # sharded (FSDP/ZeRO) saves: every rank has written its part
        local = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if self.staging.is_writer:
            ckpt.mark_complete(local, {"step": state.global_step})
            if self.uploader is not None:
                self.uploader.start(state.global_step)
        self.session.log(f"checkpoint saved at step {state.global_step}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.uploader is not None and self.staging.is_writer:
            self.uploader.wait()


# --- checkpoints --------------------------------------------------------------------------------------------------
def find_resume_step(local_steps: str, remote_steps: str | None, staging: Staging) -> int | None:
    """Rank 0: the step to resume from, the newest complete checkpoint; incomplete ones (a writer killed mid-save,
    or mid-upload) are deleted first. A local copy counts only on a shared (or single) disk: with one disk per
    machine, each holds only its own ranks' shards, so the run resumes from the remote copy, which holds every part."""
    ckpt.remove_incomplete_checkpoints(local_steps)
    local = ckpt.latest_complete_checkpoint(local_steps) if (remote_steps is None or staging.shared) else None
    local_step = ckpt.checkpoint_step(local) if local else None
    if remote_steps is None:
        return local_step
    ckpt.remove_incomplete_checkpoints(remote_steps)
    remote = ckpt.latest_complete_checkpoint(remote_steps)
    remote_step = ckpt.checkpoint_step(remote) if remote else None
    candidates = [s for s in (local_step, remote_step) if s is not None]
    return max(candidates) if candidates else None


def materialize_resume_checkpoint(step: int, local_steps: str, remote_steps: str | None, staging: Staging) -> str:
    """The writer of each disk (`Staging.is_writer`): make `local_steps/checkpoint-<step>` the complete checkpoint
    (download it unless the local copy is complete and whole); returns the local path."""
    local = os.path.join(local_steps, f"checkpoint-{step}")
    whole_locally = ckpt.is_complete_checkpoint(local) and (remote_steps is None or staging.shared)
    if not whole_locally:
        if remote_steps is None:
            raise FileNotFoundError(f"checkpoint-{step} chosen by rank 0 is missing from {local_steps} on this machine")
        ckpt.download_checkpoint(ckpt.join(remote_steps, f"checkpoint-{step}"), local)
    return local


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
    resume_step = None
    if params.resume:
        resume_step = broadcast_from_rank0(
            find_resume_step(local_steps, remote_steps, staging) if global_rank() == 0 else None
        )
    resume_from = None
    if resume_step is not None:
        if staging.is_writer:
            materialize_resume_checkpoint(resume_step, local_steps, remote_steps, staging)
        barrier()  # every machine holds the checkpoint before any rank loads it
        resume_from = os.path.join(local_steps, f"checkpoint-{resume_step}")
    resumed_step = resume_step or 0
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
    rows = load_training_rows(params.train_file)
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
        train_dataset=dataset,
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
        "tokens_per_epoch": tokens_per_epoch,
        "trained_tokens_per_epoch": trained_tokens_per_epoch,
        "examples": len(dataset),
        "examples_dropped_too_long": dropped,
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
