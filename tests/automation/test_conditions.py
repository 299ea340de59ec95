"""The automation conditions of the real code location, evaluated the way the `valley_automation` sensor evaluates
them (`dg.evaluate_automation_conditions`, tick after tick with its cursor), on materializations reported to a test
instance. The daemon-driven runs are in test_automation_daemon.py; this is the fast check of what gets requested."""

import time
import warnings

import dagster as dg
import pytest
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.definitions import build_definitions

STUDENT = "tiny-qwen2"
EVALUATION = ("lcb_generations", "lcb_scores", "ablation_generations", "ablation_scores")
ANALYSIS = ("valley_curve", "ablation_report", "valley_report")


def main(size):
    return dg.MultiPartitionKey({"data_size": size, "student": STUDENT})


def arm(name):
    return dg.MultiPartitionKey({"arm": name, "student": STUDENT})


class Ticks:
    def __init__(self, defs, instance):
        self.defs, self.instance, self.cursor = defs, instance, None

    def __call__(self) -> dict[str, set[str]]:
        """One evaluation: asset -> requested partitions (\"\" for an unpartitioned asset)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        requested = {}
        for r in result.results:
            if r.true_subset.size:
                key = r.key.to_user_string()
                parts = r.true_subset.expensively_compute_partition_keys() if r.true_subset.is_partitioned else [""]
                requested[key] = {str(p) for p in parts}
        return requested


@pytest.fixture
def study(tmp_path):
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={"storage_root": str(tmp_path / "store"),
                                                                   "data_sizes": ["0", "1k"]})
    with dg.instance_for_test() as instance:
        def materialize(asset, partition=None, version=None):
            tags = {DATA_VERSION_TAG: version} if version else None
            instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition, tags=tags))

        instance.add_dynamic_partitions("data_size", ["0", "1k"])
        instance.add_dynamic_partitions("lcb_release", ["release_v1"])
        materialize("lcb_problems", "release_v1")
        for size in ("0", "1k"):
            materialize("sft_checkpoint", main(size), version=f"model-{size}")
            for asset in ("lcb_generations", "lcb_scores"):
                materialize(asset, main(size))
        for name in ("easy", "hard", "correct", "incorrect"):
            materialize("ablation_checkpoint", arm(name), version=f"model-{name}")
            for asset in ("ablation_generations", "ablation_scores"):
                materialize(asset, arm(name))
        for asset in ANALYSIS:
            materialize(asset)
        tick = Ticks(build_definitions(cfg), instance)
        assert tick() == {}  # a built home: the first evaluation requests nothing
        yield instance, materialize, tick


def test_a_new_release_evaluates_every_main_and_ablation_checkpoint_once(study):
    instance, materialize, tick = study
    instance.add_dynamic_partitions("lcb_release", ["release_v7"])
    assert tick() == {}  # registered, problems not written: the generations wait
    materialize("lcb_problems", "release_v7")
    mains, arms = {"0|tiny-qwen2", "1k|tiny-qwen2"}, {f"{a}|tiny-qwen2" for a in ("easy", "hard", "correct",
                                                                                  "incorrect")}
    assert tick() == {"lcb_generations": mains, "lcb_scores": mains, "ablation_generations": arms,
                      "ablation_scores": arms}
    assert tick() == {}  # nothing twice


def test_a_new_checkpoint_is_evaluated_and_an_unchanged_one_is_not(study):
    instance, materialize, tick = study
    instance.add_dynamic_partitions("data_size", ["3k"])
    assert tick() == {}  # not trained yet
    materialize("sft_checkpoint", main("3k"), version="model-3k")
    assert tick() == {"lcb_generations": {"3k|tiny-qwen2"}, "lcb_scores": {"3k|tiny-qwen2"}}
    assert tick() == {}
    materialize("sft_checkpoint", main("1k"), version="model-1k")  # re-materialized, nothing trained
    assert tick() == {}
    materialize("sft_checkpoint", main("1k"), version="model-1k-retrained")  # new recipe or data
    assert tick() == {"lcb_generations": {"1k|tiny-qwen2"}, "lcb_scores": {"1k|tiny-qwen2"}}


def test_new_scores_refresh_the_analysis_once(study):
    instance, materialize, tick = study
    materialize("lcb_scores", main("0"))
    assert tick() == {"valley_curve": {""}, "valley_report": {""}}  # the ablation table follows ablation scores
    assert tick() == {}
    materialize("ablation_scores", arm("easy"))
    assert tick() == {"ablation_report": {""}, "valley_report": {""}}


def in_run(instance, assets, partition, versions=None):
    """Materializations of `assets` for `partition` from one run that targeted all of them, as a generations+scores
    run requested by the daemon, or a train-and-evaluate backfill, reports them."""
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry
    from dagster._core.test_utils import create_run_for_test

    run = create_run_for_test(instance, job_name="__ASSET_JOB", asset_selection={dg.AssetKey(a) for a in assets},
                              tags={"dagster/partition": str(partition)}, status=dg.DagsterRunStatus.SUCCESS)
    for asset in assets:
        version = (versions or {}).get(asset)
        materialization = dg.AssetMaterialization(asset, partition=partition,
                                                  tags={DATA_VERSION_TAG: version} if version else None)
        instance.store_event(EventLogEntry(
            error_info=None, level="debug", user_message="", run_id=run.run_id, timestamp=time.time(),
            step_key=asset, job_name=run.job_name,
            dagster_event=DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, run.job_name,
                                       event_specific_data=StepMaterializationData(materialization))))


def test_runs_that_generated_and_scored_two_checkpoints_score_neither_again(study):
    """Two checkpoints evaluated by two runs, the second finishing last (the asset's latest materialization is then
    the other partition's): neither is scored again; a generations-only run is. (Dagster's built-in
    `executed_with_root_target` failed the first half: seen under the daemon, 2 scorings of `0|tiny-qwen2`.)"""
    instance, materialize, tick = study
    for size in ("0", "1k"):
        in_run(instance, ["lcb_generations", "lcb_scores"], main(size))
    assert tick() == {"valley_curve": {""}, "valley_report": {""}}  # the analysis follows the new scores
    assert tick() == {}
    in_run(instance, ["lcb_generations"], main("0"))  # re-generated alone (the UI): its scores follow
    assert tick() == {"lcb_scores": {"0|tiny-qwen2"}}


def test_a_train_and_evaluate_run_does_not_generate_again(study):
    instance, materialize, tick = study
    for size in ("0", "1k"):  # `train_and_evaluate` backfilled over both checkpoints, each retrained
        in_run(instance, ["sft_checkpoint", "lcb_generations", "lcb_scores"], main(size),
               versions={"sft_checkpoint": f"model-{size}-retrained"})
    assert tick() == {"valley_curve": {""}, "valley_report": {""}}
    assert tick() == {}
