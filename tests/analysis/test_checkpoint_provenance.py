"""The checkpoint assets write `provenance.json` beside the checkpoint and attach it as metadata.

The real `sft_checkpoint` / `ablation_checkpoint` assets run here on small files; the launcher is replaced by one
that returns what the SFT entrypoint reports (training itself is covered by tests/training and the e2e test).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from valley_assets import partitions as P
from valley_assets.analysis import MANIFEST_NAME, verify_data_files
from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.defs import training
from valley_assets.defs.common import storage_for
from valley_assets.resources import StudyLayoutResource
from valley_assets.training.recipe import load_recipe

STUDENT = "tiny-qwen2"
REPORT = {"steps": 3, "epochs": 2.0, "examples": 4, "examples_dropped_too_long": 0, "tokens_seen": 900,
          "world_size": 1, "gradient_accumulation_steps": 2, "precision": "fp32", "wall_time_s": 0.5,
          "final_loss": 2.5, "loss_curve": [{"step": 1, "loss": 3.0}]}


class ReportingLauncher:
    """Stands in for the local/Kubernetes launcher: records the launch and returns the entrypoint's report."""

    def __init__(self):
        self.launches: list[dict] = []

    def run(self, context, *, module: str, params: dict, gpus: int = 0, name: str, kind: str = "training") -> dict:
        self.launches.append({"module": module, "params": params, "gpus": gpus, "name": name, "kind": kind})
        return dict(REPORT)


def _trace_rows(n: int, prefix: str) -> pl.DataFrame:
    return pl.DataFrame({
        "id": [f"{prefix}{i}" for i in range(n)],
        "question_id": [f"p{i}" for i in range(n)],
        "question": [f"Print {i}." for i in range(n)],
        "r1_generation": [f"<think>easy</think>\n```python\nprint({i})\n```" for i in range(n)],
    })


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    root = tmp_path_factory.mktemp("prov") / "store"
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={"storage_root": str(root), "data_sizes": ["0", "1k"],
                                                                    "launch": {"training_gpus": 2}})
    storage = storage_for(cfg)
    storage.write_jsonl([{"question_id": f"p{i}", "starter_code": ""} for i in range(4)], "problems", "training.jsonl")
    storage.write_parquet(_trace_rows(4, "s"), "subsets", "1k.parquet")
    storage.write_parquet(_trace_rows(3, "e"), "ablation", "easy", "subset.parquet")
    instance = dg.DagsterInstance.ephemeral()
    P.add_data_sizes(instance, ["0", "1k"])
    launcher = ReportingLauncher()
    assets = training.build(cfg).assets
    events = {}
    for asset, key in (("sft_checkpoint", {"data_size": "0", P.STUDENT: STUDENT}),
                       ("sft_checkpoint", {"data_size": "1k", P.STUDENT: STUDENT}),
                       ("ablation_checkpoint", {"arm": "easy", P.STUDENT: STUDENT})):
        pkey = dg.MultiPartitionKey(key)
        result = dg.materialize(assets, selection=[asset], partition_key=pkey, instance=instance,
                                resources={"launcher": launcher,
                                           "layout": StudyLayoutResource(root=cfg.resolved_storage_root())})
        assert result.success
        events[(asset, next(v for k, v in key.items() if k != P.STUDENT))] = (
            result.asset_materializations_for_node(asset)[0].metadata)
    return cfg, root, events, launcher


def _manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST_NAME).read_text())


def test_trained_checkpoint_manifest_is_complete(materialized):
    cfg, root, events, launcher = materialized
    folder = root / "checkpoints" / STUDENT / "1k"
    manifest = _manifest(folder)
    subset, train_file = folder.parents[2] / "subsets" / "1k.parquet", folder / "train.jsonl"
    assert [e["path"] for e in manifest["data_files"]] == [str(subset), str(train_file)]
    for entry in manifest["data_files"]:
        assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
    assert verify_data_files(manifest) == []
    # the recipe exactly as shipped to the entrypoint (resolved once, by the asset), plus what the launch derived
    recipe = load_recipe(cfg.student(STUDENT).recipe)
    assert manifest["hyperparameters"]["recipe"] == recipe.model_dump(mode="json")
    assert launcher.launches[0]["params"]["recipe"] == manifest["hyperparameters"]["recipe"]
    assert manifest["hyperparameters"]["launch"] == {"gpus": 2, "world_size": 1, "gradient_accumulation_steps": 2,
                                                     "precision": "fp32"}
    assert manifest["seeds"] == {"data": cfg.data.seed, "pool": cfg.pool.seed, "train": recipe.seed}
    assert manifest["gpu_count"] == 2
    assert manifest["gpu_hours"] == pytest.approx(manifest["wall_time_s"] * 2 / 3600)
    assert len(manifest["git"]["revision"]) == 40 or manifest["git"]["revision"] == "unknown"
    assert {"torch", "transformers", "trl", "dagster"} <= set(manifest["packages"])
    assert manifest["checkpoint"]["data_size"] == "1k" and manifest["checkpoint"]["student"] == STUDENT
    assert manifest["training_summary"]["tokens_seen"] == 900 and "loss_curve" not in manifest["training_summary"]
    meta = events[("sft_checkpoint", "1k")]
    assert meta["provenance"].value == manifest
    assert meta["provenance_path"].value == str(folder / MANIFEST_NAME)
    assert meta["git_revision"].value == manifest["git"]["revision"]


def test_base_checkpoint_manifest_records_no_training(materialized):
    _, root, events, _ = materialized
    manifest = _manifest(root / "checkpoints" / STUDENT / "0")
    assert manifest["data_files"] == [] and manifest["hyperparameters"] == {}
    assert manifest["gpu_hours"] == 0.0 and manifest["checkpoint"]["data_size"] == "0"
    assert events[("sft_checkpoint", "0")]["gpu_hours"].value == 0.0


def test_ablation_checkpoint_manifest_hashes_its_arm(materialized):
    _, root, events, launcher = materialized
    folder = root / "ablation" / "easy" / "checkpoints" / STUDENT
    manifest = _manifest(folder)
    assert [Path(e["path"]).name for e in manifest["data_files"]] == ["subset.parquet", "train.jsonl"]
    assert manifest["data_files"][0]["path"] == str(root / "ablation" / "easy" / "subset.parquet")
    assert manifest["checkpoint"]["arm"] == "easy" and manifest["checkpoint"]["stage"] == "1k"
    assert manifest["checkpoint"]["init_model"] == launcher.launches[0]["params"]["output_dir"]
    assert events[("ablation_checkpoint", "easy")]["provenance"].value == manifest
    # a changed training file is caught
    (folder / "train.jsonl").write_text("{}\n")
    assert verify_data_files(manifest) == [str(folder / "train.jsonl")]
