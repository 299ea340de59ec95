"""The SFT entrypoint for real under the production accelerate/FSDP2 config, on CPU over gloo.

This is how the cluster rehearsal trains (2 pods x 1 CPU rank): `accelerate launch --config_file
valley_assets/training/accelerate/fsdp2.yaml` with the tiny rehearsal students (real chat-template families) and the
rehearsal recipes derived from the production ones.

- one machine, 2 processes: FSDP is really on (sharded checkpoints), the final model is gathered into a safetensors
  folder that `from_pretrained` loads, the loss went down, TensorBoard event files land under output_dir/logs;
- two "machines" of 1 process each (two `accelerate launch` with --machine_rank 0/1 and separate staging folders, as
  two pods have separate disks), checkpoints on S3 (moto's server): one rank is killed after a durable checkpoint,
  the run is started again on fresh disks and continues from that step to the published model.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from valley_assets.training import checkpoints as ckpt

REPO = Path(__file__).resolve().parents[2]
FSDP2_CONFIG = "valley_assets/training/accelerate/fsdp2.yaml"

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(params_file: Path, *, machines: int, machine_rank: int, processes: int, port: int, env: dict,
            log_prefix: Path) -> subprocess.Popen:
    """`accelerate launch` of the entrypoint, as KubernetesJobLauncher's pod command runs it."""
    command = [str(REPO / ".venv/bin/accelerate"), "launch", "--config_file", FSDP2_CONFIG,
               "--num_machines", str(machines), "--num_processes", str(processes), "--machine_rank", str(machine_rank),
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
               "-m", "valley_assets.training.sft", "--params", str(params_file)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **env}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=open(f"{log_prefix}.out", "w"),
                            stderr=open(f"{log_prefix}.err", "w"))


def _result(log_prefix: Path) -> dict:
    lines = [text for text in Path(f"{log_prefix}.out").read_text().splitlines() if text.startswith('{"valley_result"')]
    assert lines, Path(f"{log_prefix}.err").read_text()[-4000:]
    return json.loads(lines[-1])["valley_result"]


def _wait(proc: subprocess.Popen, log_prefix: Path, timeout: float = 600) -> None:
    proc.wait(timeout=timeout)
    assert proc.returncode == 0, Path(f"{log_prefix}.err").read_text()[-4000:]


@pytest.fixture(scope="module")
def students(tmp_path_factory) -> dict[str, Path]:
    from tests.rehearsal.students import write_tiny_students

    return write_tiny_students(tmp_path_factory.mktemp("students"))


@pytest.fixture(scope="module")
def rehearsal_train_file(tmp_path_factory) -> Path:
    from tiny_world import write_train_file

    return write_train_file(tmp_path_factory.mktemp("data") / "train.jsonl", n=32)


def test_fsdp2_on_two_cpu_processes_publishes_a_loadable_model_and_tensorboard_logs(
    students, rehearsal_train_file, tmp_path
):
    out = tmp_path / "out"
    params = tmp_path / "params.json"
    params.write_text(json.dumps({
        # keep every checkpoint, to look at one after the run
        "recipe": {"base": "rehearsal-qwen2.5", "save_total_limit": 8}, "train_file": str(rehearsal_train_file),
        "base_model": str(students["qwen2.5-7b-instruct"]), "output_dir": str(out), "report_to": ["tensorboard"],
    }))
    proc = _launch(params, machines=1, machine_rank=0, processes=2, port=_free_port(), env={},
                   log_prefix=tmp_path / "run")
    _wait(proc, tmp_path / "run")
    summary = _result(tmp_path / "run")

    # FSDP really ran (accelerate alone would have made this plain data-parallel on CPU), over 2 ranks.
    assert summary["fsdp"] is True and summary["distributed_type"] == "FSDP" and summary["world_size"] == 2
    assert summary["precision"] == "bf16" and summary["gradient_accumulation_steps"] == 2
    # 32 examples / global batch 4 x 2 epochs; checkpoints_per_run 4 resolved against those 16 steps.
    assert summary["steps"] == 16 and summary["save_steps"] == 4
    curve = [p["loss"] for p in summary["loss_curve"]]
    assert len(curve) == 16 and sum(curve[-3:]) / 3 < sum(curve[:3]) / 3 - 0.05, curve

    # The published folder is a normal HF model (safetensors) holding the trained weights, not the base ones.
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    assert ckpt.is_complete_checkpoint(str(out)) and (out / "model.safetensors").is_file()
    assert not (out / ckpt.STEPS_DIR).exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    trained, base = load_file(out / "model.safetensors"), load_file(students["qwen2.5-7b-instruct"] / "model.safetensors")
    assert trained.keys() == base.keys() and all(t.dtype == torch.bfloat16 for t in trained.values())
    assert any(not torch.equal(trained[k], base[k]) for k in base)

    # TensorBoard event files under output_dir/logs, with the training loss in them.
    events = list((out / ckpt.LOGS_DIR / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, list(out.rglob("*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert len(acc.Scalars("train/loss")) == 16


def _remote_files(url: str) -> list[str]:
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(url)
    fs.invalidate_cache()
    return [f[len(root.rstrip("/")) + 1:] for f in fs.find(root)] if fs.exists(root) else []


@pytest.mark.parametrize("staging", ["per-pod", "shared"])
def test_two_machines_on_s3_killed_rank_resumes_from_its_durable_checkpoint(
    staging, students, rehearsal_train_file, tmp_path, monkeypatch
):
    """per-pod: each machine stages on its own disk (emptyDir) and the restart gets fresh disks, so the checkpoint
    comes back from S3; shared: both machines stage on one volume that outlives the pods (the launcher's
    ReadWriteMany `checkpoint_pvc`), rank 0 alone uploads and the restart resumes from the volume."""
    from tests.rehearsal.moto_s3 import clear_s3_client_cache, moto_server

    steps = 60
    with moto_server() as s3:
        for key, value in s3.env.items():
            monkeypatch.setenv(key, value)
        clear_s3_client_cache()
        out = s3.uri("checkpoints", "llama", "1k")
        params = tmp_path / "params.json"
        params.write_text(json.dumps({
            "recipe": {"base": "rehearsal-llama3.1", "max_steps": steps, "checkpoints_per_run": 6},
            "train_file": str(rehearsal_train_file), "base_model": str(students["llama3.1-8b-instruct"]),
            "output_dir": out,
        }))

        def staging_dir(attempt: str, machine: int) -> Path:
            return tmp_path / (f"{attempt}-pod{machine}" if staging == "per-pod" else "shared-volume")

        def start(attempt: str) -> list[subprocess.Popen]:
            port = _free_port()
            return [_launch(params, machines=2, machine_rank=m, processes=2, port=port,
                            env={"VALLEY_STAGING_DIR": str(staging_dir(attempt, m))},
                            log_prefix=tmp_path / f"{attempt}-m{m}") for m in range(2)]

        first = start("first")
        steps_dir = ckpt.join(out, ckpt.STEPS_DIR)
        deadline = time.monotonic() + 300
        while ckpt.latest_complete_checkpoint(steps_dir) is None:
            assert all(p.poll() is None for p in first), "the run ended before a durable checkpoint appeared: " + (
                tmp_path / "first-m0.err").read_text()[-3000:]
            assert time.monotonic() < deadline, "no durable checkpoint within 300 s"
            time.sleep(0.05)
        # Kill rank 1 (machine 1's worker process), as a pod lost mid-run.
        import psutil

        workers = psutil.Process(first[1].pid).children(recursive=True)
        assert workers, "machine 1 has no worker process"
        for worker in workers:
            os.kill(worker.pid, signal.SIGKILL)
        for proc in first:
            proc.wait(timeout=300)
        assert any(p.returncode != 0 for p in first)
        assert not ckpt.is_complete_checkpoint(out), "the run published although a rank was killed"

        durable = ckpt.latest_complete_checkpoint(steps_dir)
        durable_step = ckpt.checkpoint_step(durable)
        assert 0 < durable_step < steps
        # A durable checkpoint holds both machines' FSDP shards and their part markers, `_COMPLETE` included.
        files = _remote_files(durable)
        parts = {"_parts/node-0", "_parts/node-1"} if staging == "per-pod" else {"_parts/node-0"}
        assert {"_COMPLETE", "trainer_state.json", *parts} <= set(files), files
        assert {f for f in files if f.startswith("_parts/")} == parts
        shards = [f for f in files if f.endswith(".distcp")]
        assert any(f.startswith("pytorch_model_fsdp_0/__0_") for f in shards), files
        assert any(f.startswith("pytorch_model_fsdp_0/__1_") for f in shards), files

        # Restarted: per-pod, on fresh disks (new pods), so the checkpoint comes back from S3; shared, from the volume.
        second = start("second")
        for m, proc in enumerate(second):
            _wait(proc, tmp_path / f"second-m{m}")
        resumed = _result(tmp_path / "second-m0")
        # A shared volume may also hold a newer checkpoint whose upload the kill interrupted: complete there, so usable.
        if staging == "per-pod":
            assert resumed["resumed_from_step"] == durable_step
        else:
            assert durable_step <= resumed["resumed_from_step"] < steps
        assert resumed["steps"] == steps
        assert resumed["fsdp"] is True and resumed["world_size"] == 2
        assert [p["step"] for p in resumed["loss_curve"]] == list(range(1, steps + 1))  # spans both attempts
        log = (tmp_path / "second-m0.err").read_text()
        assert f"resuming from {staging_dir('second', 0)}" in log and f"(step {resumed['resumed_from_step']})" in log
        expected = "one disk per machine" if staging == "per-pod" else "one disk shared by every machine"
        assert f"checkpoint staging: {expected}" in log

        # The final model is on S3, complete, and loads.
        assert ckpt.is_complete_checkpoint(out)
        assert not any(f.startswith(ckpt.STEPS_DIR + "/") for f in _remote_files(out))
        local = tmp_path / "published"
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(out)
        fs.get(root.rstrip("/") + "/", str(local), recursive=True)
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(local)
        assert type(model).__name__ == "LlamaForCausalLM"
        losses = [p["loss"] for p in resumed["loss_curve"]]
        assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
