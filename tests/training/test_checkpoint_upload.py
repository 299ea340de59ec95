"""Background checkpoint upload to S3 (moto's server), and the tracker parameters."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from valley_assets.training import checkpoints as ckpt
from valley_assets.training.sft import CheckpointUploader, ParamsError, UploadError, parse_params


@pytest.fixture(scope="module")
def s3_server():
    from tests.rehearsal.moto_s3 import moto_server

    with moto_server() as server:
        yield server


@pytest.fixture
def s3(s3_server, monkeypatch):
    from tests.rehearsal.moto_s3 import clear_s3_client_cache

    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    clear_s3_client_cache()
    bucket = s3_server.create_bucket()
    yield SimpleNamespace(uri=lambda *parts: "/".join([f"s3://{bucket}", *parts]), server=s3_server)
    clear_s3_client_cache()


def _checkpoint(root: Path, step: int, files: dict[str, bytes]) -> Path:
    folder = root / ckpt.STEPS_DIR / f"checkpoint-{step}"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _session():
    logs = []
    return SimpleNamespace(log=logs.append, logs=logs)


def test_checkpoint_is_durable_only_when_every_machine_uploaded_its_part(s3, tmp_path, monkeypatch):
    remote_steps = s3.uri("run", ckpt.STEPS_DIR)
    # Two machines, each with its own disk holding its own rank's shards (as FSDP writes them).
    pod0, pod1 = tmp_path / "pod0", tmp_path / "pod1"
    _checkpoint(pod0, 5, {"trainer_state.json": b"{}", "pytorch_model_fsdp_0/__0_0.distcp": b"a" * 1000,
                          "pytorch_model_fsdp_0/.metadata": b"m"})
    _checkpoint(pod1, 5, {"pytorch_model_fsdp_0/__1_0.distcp": b"b" * 1000})
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("GROUP_RANK", "0")
    session = _session()
    coordinator = CheckpointUploader(str(pod0 / ckpt.STEPS_DIR), remote_steps, keep=2, session=session,
                                     parts_timeout_s=60)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("GROUP_RANK", "1")
    other = CheckpointUploader(str(pod1 / ckpt.STEPS_DIR), remote_steps, keep=2, session=_session())
    assert (coordinator.coordinator, coordinator.nodes, other.coordinator, other.part) == (True, 2, False, "node-1")

    coordinator.start(5)
    remote = ckpt.join(remote_steps, "checkpoint-5")
    # The coordinator's files arrive, but the checkpoint is not durable while machine 1's part is missing.
    import time

    deadline = time.monotonic() + 30
    while "node-0" not in ckpt.uploaded_parts(remote):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)
    assert not ckpt.is_complete_checkpoint(remote) and ckpt.latest_complete_checkpoint(remote_steps) is None
    other.start(5)
    other.wait()
    coordinator.wait()
    assert ckpt.is_complete_checkpoint(remote) and coordinator.durable_steps == [5]
    restored = ckpt.download_checkpoint(remote, str(tmp_path / "restored"))
    names = sorted(p.relative_to(restored).as_posix() for p in Path(restored).rglob("*") if p.is_file())
    assert "pytorch_model_fsdp_0/__0_0.distcp" in names and "pytorch_model_fsdp_0/__1_0.distcp" in names
    assert any("checkpoint-5 is durable" in line for line in session.logs)


def test_one_upload_in_flight_and_old_checkpoints_pruned(s3, tmp_path, monkeypatch):
    for key in ("RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    remote_steps = s3.uri("single", ckpt.STEPS_DIR)
    for step in (2, 4, 6):
        _checkpoint(tmp_path, step, {"weights.bin": bytes([step]) * 50_000})
    uploader = CheckpointUploader(str(tmp_path / ckpt.STEPS_DIR), remote_steps, keep=2, session=_session())
    started = threading.Event()
    release = threading.Event()
    original = ckpt.upload_checkpoint_part
    calls = []

    def gated_upload(local_dir, remote_dir, part):  # holds the first upload until released
        calls.append(ckpt.checkpoint_step(remote_dir))
        if len(calls) == 1:
            started.set()
            assert release.wait(30)
        original(local_dir, remote_dir, part)

    monkeypatch.setattr(ckpt, "upload_checkpoint_part", gated_upload)
    uploader.start(2)
    assert started.wait(30)
    second = threading.Thread(target=uploader.start, args=(4,))
    second.start()
    second.join(0.5)
    assert second.is_alive() and calls == [2], "the next save must wait for the upload in flight"
    release.set()
    second.join(30)
    uploader.start(6)
    uploader.wait()
    assert calls == [2, 4, 6] and uploader.durable_steps == [2, 4, 6]
    assert [s for s, _, done in ckpt.list_checkpoints(remote_steps) if done] == [4, 6]  # save_total_limit 2


def test_failed_upload_fails_the_run_naming_the_checkpoint(s3, tmp_path, monkeypatch):
    for key in ("RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    _checkpoint(tmp_path, 3, {"weights.bin": b"x" * 100})
    # The object store goes away mid-run: nothing listens on the endpoint any more.
    import socket

    from tests.rehearsal.moto_s3 import clear_s3_client_cache

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clear_s3_client_cache()
    remote_steps = s3.uri("run", ckpt.STEPS_DIR)
    uploader = CheckpointUploader(str(tmp_path / ckpt.STEPS_DIR), remote_steps, keep=2, session=_session())
    uploader.start(3)
    with pytest.raises(UploadError, match=rf"uploading checkpoint-3 to {remote_steps} failed: .*"):
        uploader.wait()
    assert uploader.durable_steps == []


BASE = {"recipe": "demo-tiny", "train_file": "t.jsonl", "base_model": "m", "output_dir": "o"}


def test_report_to_parameter(monkeypatch, tmp_path):
    from valley_assets.training.sft import configure_trackers

    assert parse_params(BASE).report_to == ["none"]  # the demo default: Dagster metadata only
    assert parse_params({**BASE, "report_to": "tensorboard"}).report_to == ["tensorboard"]
    with pytest.raises(ParamsError, match="unknown trackers \\['neptun'\\]"):
        parse_params({**BASE, "report_to": ["tensorboard", "neptun"]})
    with pytest.raises(ParamsError, match="'none' cannot be combined"):
        parse_params({**BASE, "report_to": ["none", "wandb"]})
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    with pytest.raises(ParamsError, match="WANDB_API_KEY is not set"):
        configure_trackers(["wandb"], str(tmp_path / "logs"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # recorded, so the value set below is undone after the test
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    configure_trackers(["mlflow"], str(tmp_path / "logs"))
    import os

    assert os.environ["MLFLOW_TRACKING_URI"] == "file://" + str(tmp_path / "logs" / "mlruns")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    configure_trackers(["mlflow"], str(tmp_path / "logs"))
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.internal:5000"  # the cluster's server wins
