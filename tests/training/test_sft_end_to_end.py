"""SFT on the tiny student for real: inside a Dagster materialization, and killed mid-way then resumed."""


import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import torch
from safetensors.torch import load_file

from valley_assets.launch.base import LaunchError
from valley_assets.launch.local import LocalProcessLauncher
from valley_assets.training import checkpoints as ckpt

REPO = Path(__file__).resolve().parents[2]
SMALL = {"max_length": 256, "save_steps": 2}


def _materialize(params: dict):
    @dg.asset
    def checkpoint(context: dg.AssetExecutionContext, launcher: LocalProcessLauncher) -> dg.MaterializeResult:
        metadata = launcher.run(context, module="valley_assets.training.sft", params=params, name="sft-test")
        return dg.MaterializeResult(metadata={k: v for k, v in metadata.items() if k != "loss_curve"} | {
            "loss_curve": dg.MetadataValue.json(metadata["loss_curve"])})

    return dg.materialize([checkpoint], resources={"launcher": LocalProcessLauncher(cwd=str(REPO))},
                          raise_on_error=False)


def test_sft_materializes_through_pipes(tiny_student, train_file, tmp_path):
    out = tmp_path / "ckpt"
    params = {"recipe": {"base": "demo-tiny", **SMALL, "max_steps": 4}, "train_file": str(train_file),
              "base_model": str(tiny_student), "output_dir": str(out)}
    result = _materialize(params)
    assert result.success
    [mat] = result.asset_materializations_for_node("checkpoint")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["steps"] == 4 and meta["resumed_from_step"] == 0
    assert [p["step"] for p in meta["loss_curve"]] == [1, 2, 3, 4]
    assert meta["tokens_seen"] > 0 and meta["wall_time_s"] > 0 and meta["final_loss"] == meta["loss_curve"][-1]["loss"]
    assert ckpt.is_complete_checkpoint(str(out)) and not (out / ckpt.STEPS_DIR).exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)  # the published folder is a loadable model


def test_sft_failure_raises_a_clear_error(tiny_student, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "only a question"}]}) + "\n")
    params = {"recipe": "demo-tiny", "train_file": str(bad), "base_model": str(tiny_student),
              "output_dir": str(tmp_path / "o")}
    result = _materialize(params)
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    chain = []
    while error is not None:
        chain.append(f"{error.cls_name}: {error.message}")
        error = error.cause
    assert any("LaunchError" in e and "sft-test" in e and "valley_assets.training.sft" in e for e in chain), chain


def _run_standalone(params: dict, tmp_path: Path, tag: str) -> subprocess.Popen:
    params_file = tmp_path / f"params-{tag}.json"
    params_file.write_text(json.dumps(params))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "valley_assets.training.sft", "--params", str(params_file)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    line = [l for l in stdout.splitlines() if l.startswith('{"valley_result"')][-1]
    return json.loads(line)["valley_result"]


def test_killed_run_resumes_from_its_last_checkpoint(tiny_student, train_file, tmp_path):
    steps = 12
    base = {"recipe": {"base": "demo-tiny", **SMALL, "max_steps": steps}, "train_file": str(train_file),
            "base_model": str(tiny_student)}
    # Reference: the same run uninterrupted.
    reference = _result(_run_standalone({**base, "output_dir": str(tmp_path / "ref")}, tmp_path, "ref"))

    out = tmp_path / "killed"
    proc = _run_standalone({**base, "output_dir": str(out)}, tmp_path, "killed")
    deadline = time.monotonic() + 120
    while ckpt.latest_complete_checkpoint(str(out / ckpt.STEPS_DIR)) is None:
        assert proc.poll() is None, "training ended before a checkpoint appeared"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not ckpt.is_complete_checkpoint(str(out)), "killed before publishing"
    killed_at = ckpt.checkpoint_step(ckpt.latest_complete_checkpoint(str(out / ckpt.STEPS_DIR)))
    assert 0 < killed_at < steps

    resumed = _result(_run_standalone({**base, "output_dir": str(out)}, tmp_path, "resumed"))
    assert resumed["resumed_from_step"] >= killed_at and resumed["steps"] == steps
    # The curve spans the restart: every step once, the pre-kill points restored from trainer_state.json.
    assert [p["step"] for p in resumed["loss_curve"]] == list(range(1, steps + 1))
    # Same step counter, optimizer, scheduler and data position => the same losses and weights as uninterrupted.
    for got, want in zip(resumed["loss_curve"], reference["loss_curve"]):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-4, abs=1e-5), got["step"]
    ref_w, got_w = load_file(tmp_path / "ref" / "model.safetensors"), load_file(out / "model.safetensors")
    for name, tensor in ref_w.items():
        torch.testing.assert_close(got_w[name], tensor, rtol=1e-4, atol=1e-5)
