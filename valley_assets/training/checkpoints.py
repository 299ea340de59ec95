"""Durable checkpoints: where a training run keeps its state, how a restart finds it, how the final model is published.

Layout of a run's `output_dir` (a local folder or an fsspec URL such as `s3://bucket/checkpoints/qwen/10k`):

    <output_dir>/                       the final model (config, weights, tokenizer) + training_summary.json
    <output_dir>/_COMPLETE              written last: a reader treats a folder without it as not done
    <output_dir>/_run.json              fingerprint of the inputs (recipe, base model, train file) the state belongs to
    <output_dir>/_steps/checkpoint-N/   Trainer checkpoints (weights, optimizer, scheduler, RNG, trainer_state.json),
                                        each with its own `_COMPLETE` written after the Trainer finished saving it
    <output_dir>/_steps/checkpoint-N/_parts/node-K   remote only: machine K's files of it are uploaded
    <output_dir>/logs/                  experiment-tracker files (TensorBoard events, MLflow file store), when enabled

A process killed while saving leaves a `checkpoint-N` without `_COMPLETE`; restarts ignore and delete it, and resume
from the newest complete one. For a remote `output_dir` the Trainer writes to a local staging folder and every
complete checkpoint is uploaded (files first, then each machine's part marker, `_COMPLETE` last, once every part is
there: under FSDP across machines with their own disks each machine holds only its ranks' shards); a restart on a
fresh machine downloads the newest complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import fsspec
from fsspec.core import url_to_fs

COMPLETE_MARKER = "_COMPLETE"
RUN_FILE = "_run.json"
STEPS_DIR = "_steps"
SUMMARY_FILE = "training_summary.json"
LOGS_DIR = "logs"  # experiment-tracker files (TensorBoard events, ...), copied with each durable checkpoint
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def is_remote(path: str) -> bool:
    """True for fsspec URLs other than local files (`s3://`, `gs://`, `memory://`, ...)."""
    protocol = fsspec.utils.get_protocol(str(path))
    return protocol not in ("file", "local")


def join(base: str, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *parts])


def is_complete_checkpoint(path: str) -> bool:
    """True when `path` (local or URL) holds a checkpoint or final model whose writer finished (`_COMPLETE` present)."""
    fs, root = url_to_fs(str(path))
    return fs.isfile(join(root, COMPLETE_MARKER))


def mark_complete(path: str, payload: dict | None = None) -> None:
    """Write the `_COMPLETE` marker into `path`; call it only after everything else there is written."""
    fs, root = url_to_fs(str(path))
    with fs.open(join(root, COMPLETE_MARKER), "w") as fh:
        json.dump(payload or {}, fh)


def checkpoint_step(name: str) -> int | None:
    """The step of a `checkpoint-N` folder name, None for anything else."""
    match = _CHECKPOINT_RE.match(Path(name).name)
    return int(match.group(1)) if match else None


def list_checkpoints(steps_dir: str) -> list[tuple[int, str, bool]]:
    """(step, path, complete) of every `checkpoint-N` under `steps_dir`, oldest first; [] when the folder is absent."""
    fs, root = url_to_fs(str(steps_dir))
    if not fs.isdir(root):
        return []
    found = []
    for entry in fs.ls(root, detail=False):
        step = checkpoint_step(entry.rstrip("/"))
        if step is not None:
            # The path in the caller's form (`s3://...` stays a URL; fs.ls drops the protocol).
            path = join(str(steps_dir), Path(entry.rstrip("/")).name)
            found.append((step, path, fs.isfile(join(entry, COMPLETE_MARKER))))
    return sorted(found)


def latest_complete_checkpoint(steps_dir: str) -> str | None:
    """Path of the complete checkpoint with the highest step under `steps_dir`, or None."""
    complete = [path for _, path, done in list_checkpoints(steps_dir) if done]
    return complete[-1] if complete else None


def remove_incomplete_checkpoints(steps_dir: str) -> list[str]:
    """Delete `checkpoint-N` folders without a marker (a writer killed mid-save); return what was deleted."""
    fs, _ = url_to_fs(str(steps_dir))
    removed = []
    for _, path, done in list_checkpoints(steps_dir):
        if not done:
            fs.rm(path, recursive=True)
            removed.append(path)
    return removed


# --- run fingerprint ----------------------------------------------------------------------------------------------
def file_sha256(url: str, chunk: int = 1 << 22) -> str:
    fs, path = url_to_fs(url)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def run_fingerprint(recipe: dict, base_model: str, train_file_sha256: str) -> str:
    """What the checkpoints in an output_dir depend on; state from another fingerprint must not be resumed."""
    blob = json.dumps({"recipe": recipe, "base_model": base_model, "train": train_file_sha256}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_run_fingerprint(output_dir: str) -> str | None:
    fs, root = url_to_fs(str(output_dir))
    path = join(root, RUN_FILE)
    if not fs.isfile(path):
        return None
    with fs.open(path, "r") as fh:
        return json.load(fh).get("fingerprint")


def claim_output_dir(output_dir: str, fingerprint: str) -> bool:
    """Make `output_dir` belong to `fingerprint`: state written for other inputs is deleted.

    Returns True when the folder already belonged to this fingerprint (so its checkpoints may be resumed).
    """
    fs, root = url_to_fs(str(output_dir))
    previous = read_run_fingerprint(output_dir)
    if previous == fingerprint:
        return True
    if fs.exists(root):
        entries = fs.ls(root, detail=False)
        if entries and previous is None:
            # Every folder this module writes starts with _run.json; anything else is not ours to delete.
            raise FileExistsError(
                f"output_dir {output_dir} is not empty and holds no {RUN_FILE}: it was not written by a training "
                "run, so it is left alone; point output_dir at an empty or training-owned folder"
            )
        for entry in entries:
            fs.rm(entry, recursive=True)
    fs.makedirs(root, exist_ok=True)
    with fs.open(join(root, RUN_FILE), "w") as fh:
        json.dump({"fingerprint": fingerprint}, fh)
    return False


# --- remote mirroring ---------------------------------------------------------------------------------------------
PARTS_DIR = "_parts"


def upload_checkpoint(local_dir: str, remote_dir: str) -> None:
    """Copy a finished local checkpoint to `remote_dir` (one writer): every file first, the `_COMPLETE` marker last."""
    remove_tree(remote_dir)  # a partial upload from a killed predecessor
    upload_checkpoint_part(local_dir, remote_dir, part="node-0")
    mark_complete(remote_dir)


def upload_checkpoint_part(local_dir: str, remote_dir: str, part: str) -> None:
    """Upload the files one machine holds of a checkpoint, then its part marker `_parts/<part>`.

    With FSDP over several machines each one writes only its own ranks' shards (and RNG states) to its local disk, so
    every machine uploads what it has into the same remote folder; the coordinator writes `_COMPLETE` once every
    part marker is there (`wait_for_parts`). Files are never deleted here: another machine may be uploading.
    """
    upload_tree(local_dir, remote_dir, skip=(COMPLETE_MARKER,))
    fs, remote_root = url_to_fs(remote_dir)
    with fs.open(join(remote_root, PARTS_DIR, part), "w") as fh:
        json.dump({"part": part}, fh)


def upload_tree(local_dir: str, remote_dir: str, skip: tuple[str, ...] = ()) -> None:
    """Copy every file under `local_dir` (but those named in `skip`) to `remote_dir`, overwriting."""
    fs, remote_root = url_to_fs(remote_dir)
    local = Path(local_dir)
    for file in sorted(p for p in local.rglob("*") if p.is_file() and p.name not in skip):
        target = join(remote_root, file.relative_to(local).as_posix())
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(file), target)


def uploaded_parts(remote_dir: str) -> set[str]:
    fs, remote_root = url_to_fs(remote_dir)
    folder = join(remote_root, PARTS_DIR)
    if not fs.isdir(folder):
        return set()
    fs.invalidate_cache(folder)
    return {entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(folder, detail=False)}


def wait_for_parts(remote_dir: str, parts: set[str], timeout_s: float, poll_s: float = 1.0) -> None:
    """Block until every part marker in `parts` exists under `remote_dir`; raise TimeoutError naming the missing."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        missing = parts - uploaded_parts(remote_dir)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{remote_dir}: parts {sorted(missing)} were not uploaded within {timeout_s:.0f} s "
                "(another machine of the run failed or is stuck uploading its shards)"
            )
        time.sleep(poll_s)


def download_checkpoint(remote_dir: str, local_dir: str) -> str:
    """Copy a complete remote checkpoint into `local_dir` (replacing it); return `local_dir`."""
    if not is_complete_checkpoint(remote_dir):
        raise FileNotFoundError(f"{remote_dir} is not a complete checkpoint (no {COMPLETE_MARKER})")
    return _download_tree(remote_dir, local_dir)


def download_model_folder(remote_dir: str, local_dir: str) -> str:
    """Copy a model folder that is not a training output (a hub model mirrored to object storage) into `local_dir`."""
    fs, remote_root = url_to_fs(remote_dir)
    if not fs.isfile(join(remote_root, "config.json")):
        raise FileNotFoundError(f"{remote_dir} holds no config.json: not a model folder (mirror the hub repo's files "
                                "there, e.g. `huggingface-cli download REPO --local-dir D && aws s3 sync D URL`)")
    return _download_tree(remote_dir, local_dir)


def _download_tree(remote_dir: str, local_dir: str) -> str:
    fs, remote_root = url_to_fs(remote_dir)
    local = Path(local_dir)
    if local.exists():
        shutil.rmtree(local)
    local.mkdir(parents=True)
    for remote_file in fs.find(remote_root):
        relative = remote_file[len(remote_root.rstrip("/")) + 1:]
        target = local / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote_file, str(target))
    return str(local)


def prune_remote_checkpoints(remote_steps_dir: str, keep_steps: set[int]) -> None:
    """Delete remote checkpoints whose step is not in `keep_steps` (mirrors the Trainer's local rotation)."""
    fs, _ = url_to_fs(remote_steps_dir)
    for step, path, _ in list_checkpoints(remote_steps_dir):
        if step not in keep_steps:
            fs.rm(path, recursive=True)


# --- final model --------------------------------------------------------------------------------------------------
def publish_final(local_model_dir: str, output_dir: str, summary: dict) -> None:
    """Publish a saved model into `output_dir` so that a reader sees either no `_COMPLETE` or the whole model.

    Files are moved (local) or uploaded (remote) into the root of `output_dir`, then `training_summary.json`, then the
    marker. A stale marker from an earlier publication is removed first, so a crash mid-way reads as not done.
    """
    fs, root = url_to_fs(str(output_dir))
    marker = join(root, COMPLETE_MARKER)
    if fs.isfile(marker):
        fs.rm(marker)
    local = Path(local_model_dir)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"nothing to publish: {local_model_dir} is empty")
    for file in files:
        relative = file.relative_to(local).as_posix()
        if is_remote(output_dir):
            target = join(root, relative)
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(file), target)
        else:
            target_path = Path(root) / relative
            target_path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target_path)  # same filesystem: the staging dir lives inside output_dir
    with fs.open(join(root, SUMMARY_FILE), "w") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
    mark_complete(output_dir, {"final_step": summary.get("steps")})


def remove_tree(path: str) -> None:
    """Delete a folder (local or remote) if it exists."""
    fs, root = url_to_fs(str(path))
    if fs.exists(root):
        fs.rm(root, recursive=True)


def read_summary(output_dir: str) -> dict:
    fs, root = url_to_fs(str(output_dir))
    with fs.open(join(root, SUMMARY_FILE), "r") as fh:
        return json.load(fh)
