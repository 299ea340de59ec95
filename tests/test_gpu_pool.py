"""Steps that hold accelerators share one Dagster concurrency pool, and the deployment limits it. Without it two
multi-node training Jobs could each get part of their pods scheduled and wait forever for the rest (the rehearsal
deadlocked that way); the run coordinator's tag limits cannot prevent it, since asset tags never become run tags."""

from pathlib import Path

import yaml

from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.definitions import build_definitions
from valley_assets.defs.common import GPU_POOL

REPO = Path(__file__).resolve().parents[1]
GPU_ASSETS = {"sft_checkpoint", "ablation_checkpoint", "lcb_generations", "ablation_generations"}


def test_every_gpu_asset_is_in_the_gpu_pool():
    defs = build_definitions(load_study_config(PROFILES_DIR / "production.yaml"))
    pools = {}
    for assets_def in defs.get_repository_def().assets_defs_by_key.values():
        for key in assets_def.keys:
            pools[key.to_user_string()] = assets_def.op.pool
    assert {name: pools[name] for name in GPU_ASSETS} == dict.fromkeys(GPU_ASSETS, GPU_POOL)


def test_helm_values_limit_the_pool_and_no_longer_rely_on_run_tags():
    values = yaml.safe_load((REPO / "k8s" / "helm" / "dagster-values.yaml").read_text())
    assert values["concurrency"]["pools"]["defaultLimit"] >= 1
    coordinator = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert "tagConcurrencyLimits" not in coordinator
