"""What makes the SFT run's checkpoints survive the pod: where the ranks stage them, their upload to a remote
output_dir, and the checkpoint a restarted run resumes from.

The Trainer writes `checkpoint-N` folders under a local steps folder (`output_dir/_steps`, or a staging folder when
output_dir is an object-store URL). `DurableCheckpointCallback` marks each one complete once every rank has written
its part, and `CheckpointUploader` mirrors it to the remote `_steps/` in the background; a remote checkpoint counts
as durable only when every machine's part is up and rank 0 wrote its `_COMPLETE`. On restart, rank 0 picks the
newest complete checkpoint, local or remote, and every machine's writer makes a whole local copy of it
(`resume_checkpoint`). Collective functions say so: every rank must call them.
"""

from __future__ import annotations

import os
import shutil
import time

from transformers import TrainerCallback

from valley_assets.entrypoint import EntrypointSession, global_rank
from valley_assets.training import checkpoints as ckpt
from valley_assets.training.distributed import barrier, broadcast_from_rank0, local_rank, node_rank, num_nodes


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


def resume_checkpoint(local_steps: str, remote_steps: str | None, staging: Staging) -> str | None:
    """The local folder of the checkpoint to resume from, whole on every machine, or None to start from step 0.
    Collective: rank 0 decides the step and broadcasts it; each disk's writer downloads it when needed."""
    step = broadcast_from_rank0(find_resume_step(local_steps, remote_steps, staging) if global_rank() == 0 else None)
    if step is None:
        return None
    if staging.is_writer:
        materialize_resume_checkpoint(step, local_steps, remote_steps, staging)
    barrier()  # every machine holds the checkpoint before any rank loads it
    return os.path.join(local_steps, f"checkpoint-{step}")
