"""`unmaterialized` is what `valley demo` and the full-graph test trust to say the whole graph is done."""

import dagster as dg

from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.definitions import build_definitions
from valley_assets.study_runner import register_partitions, run_study, unmaterialized


def test_unmaterialized_names_every_missing_asset_partition(tmp_path):
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={"storage_root": str(tmp_path / "store")})
    defs = build_definitions(cfg)
    instance = dg.DagsterInstance.ephemeral()
    expected, missing = unmaterialized(defs, instance)
    assert "sft_checkpoint (no partition keys registered)" in missing  # nothing registered yet: not "all done"

    register_partitions(instance, cfg)
    expected, missing = unmaterialized(defs, instance)
    assert expected == len(missing)
    assert {"training_problems", "valley_curve", "sft_checkpoint[1k|tiny-qwen2]", "lcb_problems[release_v1]",
            "lcb_scores[30k|tiny-qwen2]"} <= set(missing)

    run_study(defs, cfg, instance, stages=[["training_problems"]], log=lambda m: None)
    after_expected, after = unmaterialized(defs, instance)
    assert after_expected == expected and set(missing) - set(after) == {"training_problems"}
