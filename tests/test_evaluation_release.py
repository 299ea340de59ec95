"""Scores grade the release their generations ran on, not whatever release is newest when the scoring step runs."""

import dagster as dg
import pytest

from valley_assets.defs.evaluation import generated_release


def test_scores_follow_the_release_of_the_latest_generations():
    with dg.instance_for_test() as instance:
        partition = "1k|tiny-qwen2"
        ctx = dg.build_asset_context(instance=instance, partition_key=partition)
        with pytest.raises(FileNotFoundError, match=r"lcb_generations\[1k\|tiny-qwen2\]"):
            generated_release(ctx, "lcb_generations")
        for release in ("release_v1", "release_v2"):
            instance.report_runless_asset_event(dg.AssetMaterialization(
                "lcb_generations", partition=partition, metadata={"release": release}))
        instance.report_runless_asset_event(dg.AssetMaterialization(  # another partition, a newer release
            "lcb_generations", partition="0|tiny-qwen2", metadata={"release": "release_v3"}))
        assert generated_release(ctx, "lcb_generations") == "release_v2"
