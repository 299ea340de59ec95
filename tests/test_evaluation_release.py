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


def test_one_release_rule_for_every_evaluation_step():
    """Issue K: the release came from four places. Now one function decides, from the one input each step reads."""
    from valley_assets.defs.common import resolve_release

    ready = ["release_v1", "release_v2"]
    assert resolve_release("", ready, what="x") == "release_v2"  # newest ready
    assert resolve_release("release_v1", ready, what="x") == "release_v1"
    with pytest.raises(FileNotFoundError, match=r"release 'release_v3' has no samples; releases that have: "
                                                r"\['release_v1', 'release_v2'\]"):
        resolve_release("release_v3", ready, what="samples")
    with pytest.raises(FileNotFoundError, match="no release has lcb_problems materialized"):
        resolve_release("", [], what="lcb_problems materialized")
    with pytest.raises(ValueError, match="release"):
        resolve_release("bad|key", ready, what="x")


def test_generations_take_the_newest_registered_release_in_storage(tmp_path):
    from valley_assets import partitions as P
    from valley_assets.defs.evaluation import generation_release
    from valley_assets.layout import StudyLayout

    layout = StudyLayout(str(tmp_path))
    with dg.instance_for_test() as instance:
        P.add_releases(instance, ["release_v1", "release_v2", "release_v3"])
        ctx = dg.build_asset_context(instance=instance)
        for release in ("release_v1", "release_v2"):  # v3 is registered but its problems are not fetched yet
            layout.lcb_problems(release).write_jsonl([{"question_id": "q"}])
        assert generation_release(ctx, layout, "") == "release_v2"
        assert generation_release(ctx, layout, "release_v1") == "release_v1"
        with pytest.raises(FileNotFoundError, match="release_v3"):
            generation_release(ctx, layout, "release_v3")


def test_analysis_defaults_to_the_release_scored_last():
    import polars as pl

    from valley_assets.defs.analysis import pick_release

    frame = pl.DataFrame({"release": ["release_v2", "release_v1", "release_v2"],
                          "scored_at": ["2025-01-01", "2025-03-01", "2025-02-01"]})
    assert pick_release(frame, "", "lcb_scores") == "release_v1"
    assert pick_release(frame, "release_v2", "lcb_scores") == "release_v2"
    with pytest.raises(FileNotFoundError, match="materialize lcb_scores first"):
        pick_release(frame.clear(), "", "lcb_scores")
