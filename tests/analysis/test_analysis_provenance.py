from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from valley_assets.analysis import MANIFEST_NAME, provenance_manifest, verify_data_files, write_manifest

REPO = Path(__file__).resolve().parents[2]


def _data_files(tmp_path: Path) -> list[Path]:
    small = tmp_path / "subset.parquet"
    small.write_bytes(b"PAR1 tiny")
    big = tmp_path / "train.jsonl"
    # Larger than the 1 MiB read chunk, so the streamed digest crosses chunk boundaries.
    big.write_bytes(b"".join(b'{"messages": [%d]}\n' % i for i in range(120_000)))
    return [small, big]


def _manifest(tmp_path: Path, **overrides):
    args = dict(
        hyperparameters={"lr": 1e-5, "epochs": 3, "packing": False},
        seeds={"data": 0, "train": 42},
        data_files=_data_files(tmp_path),
        wall_time_s=5400.0,
        gpu_count=8,
        extra={"student": "qwen"},
    )
    args.update(overrides)
    return provenance_manifest(**args)


def test_manifest_hashes_match_the_files(tmp_path):
    manifest = _manifest(tmp_path)
    assert len(manifest["data_files"]) == 2
    for entry in manifest["data_files"]:
        content = Path(entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(content).hexdigest()
        assert entry["bytes"] == len(content)
    assert manifest["data_files"][1]["bytes"] > 1 << 20
    assert verify_data_files(manifest) == []
    Path(manifest["data_files"][0]["path"]).write_bytes(b"changed")
    assert verify_data_files(manifest) == [manifest["data_files"][0]["path"]]


def test_manifest_records_compute_seeds_versions_and_extra(tmp_path):
    manifest = _manifest(tmp_path)
    assert manifest["gpu_hours"] == pytest.approx(12.0)
    assert manifest["seeds"] == {"data": 0, "train": 42}
    assert manifest["hyperparameters"]["lr"] == 1e-5
    assert manifest["student"] == "qwen"
    for package in ("torch", "transformers", "trl", "dagster", "datasets", "polars"):
        assert manifest["packages"][package]
    assert "vllm" not in manifest["packages"] or manifest["packages"]["vllm"]
    assert _manifest(tmp_path, seeds=7, gpu_count=0)["seeds"] == {"seed": 7}


def test_git_revision_of_this_repository_and_unknown_outside_git(tmp_path):
    manifest = _manifest(tmp_path, repo_dir=REPO)
    if shutil.which("git") is None:
        assert manifest["git"] == {"revision": "unknown", "dirty": None}
        return
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the checkout has no git history")
    assert manifest["git"]["revision"] == head.stdout.strip()
    assert isinstance(manifest["git"]["dirty"], bool)
    outside = tmp_path / "not_a_repo"
    outside.mkdir()
    assert _manifest(tmp_path, repo_dir=outside)["git"] == {"revision": "unknown", "dirty": None}


def test_write_manifest_puts_provenance_json_beside_the_checkpoint(tmp_path):
    manifest = _manifest(tmp_path)
    checkpoint = tmp_path / "checkpoints" / "qwen" / "1k"
    path = write_manifest(checkpoint, manifest)
    assert Path(path) == checkpoint / MANIFEST_NAME
    assert json.loads(Path(path).read_text()) == manifest
    assert [p.name for p in checkpoint.iterdir()] == [MANIFEST_NAME]  # no temporary file left behind


def test_bad_inputs_are_refused_with_the_field_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        _manifest(tmp_path, data_files=[tmp_path / "missing.parquet"])
    with pytest.raises(ValueError, match="'hyperparameters' is not plain JSON"):
        _manifest(tmp_path, hyperparameters={"scheduler": object()})
    with pytest.raises(ValueError, match="gpu_count"):
        _manifest(tmp_path, gpu_count=-1)
    with pytest.raises(ValueError, match="wall_time_s"):
        _manifest(tmp_path, wall_time_s=float("nan"))
    with pytest.raises(ValueError, match="seed 'train'"):
        _manifest(tmp_path, seeds={"train": "42"})
    with pytest.raises(ValueError, match="would overwrite"):
        _manifest(tmp_path, extra={"gpu_hours": 0})
