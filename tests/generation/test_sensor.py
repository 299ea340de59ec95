"""The release sensor against a minimal Definitions with the study's partition shapes."""

import json

import dagster as dg
import pytest

from valley_assets.generation.sensor import (
    RELEASE_TAG,
    ReleaseCursor,
    build_release_sensor,
    plan_tick,
    release_run_config,
)

data_size = dg.DynamicPartitionsDefinition(name="data_size")
student = dg.StaticPartitionsDefinition(["tiny-qwen2", "tiny-llama"])
checkpoints = dg.MultiPartitionsDefinition({"data_size": data_size, "student": student})
lcb_release = dg.DynamicPartitionsDefinition(name="lcb_release")


class ReleaseConfig(dg.Config):
    release: str


@dg.asset(partitions_def=lcb_release)
def lcb_problems() -> None: ...


@dg.asset(partitions_def=checkpoints)
def checkpoint() -> None: ...


@dg.asset(partitions_def=checkpoints, deps=[checkpoint])
def generations(config: ReleaseConfig) -> None: ...


@dg.asset(partitions_def=checkpoints, deps=[generations])
def scores(config: ReleaseConfig) -> None: ...


evaluate_job = dg.define_asset_job("evaluate", selection=[generations, scores], partitions_def=checkpoints)
problems_job = dg.define_asset_job("lcb_problems_job", selection=[lcb_problems], partitions_def=lcb_release)


def make_defs(source, **kw):
    sensor = build_release_sensor(
        source=str(source), job=evaluate_job, problems_job=problems_job, problems_asset="lcb_problems",
        checkpoint_assets=["checkpoint"], release_partitions=lcb_release,
        run_config_for_release=lambda r: release_run_config(["generations", "scores"], r), **kw,
    )
    return sensor, dg.Definitions(assets=[lcb_problems, checkpoint, generations, scores],
                                  jobs=[evaluate_job, problems_job], sensors=[sensor])


def materialize_partition(instance, key, partition):
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))


def apply_result(instance, result):
    """What the daemon does with a SensorResult's partition requests."""
    for req in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))


def tick(sensor, defs, instance, cursor):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    result = sensor(ctx)
    if isinstance(result, dg.SensorResult):
        apply_result(instance, result)
    return result


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("data_size", ["0", "1k"])
        for size, name in (("0", "tiny-qwen2"), ("1k", "tiny-qwen2"), ("1k", "tiny-llama")):
            materialize_partition(inst, "checkpoint", dg.MultiPartitionKey({"data_size": size, "student": name}))
        yield inst


def test_new_release_registers_fetches_problems_then_evaluates_every_checkpoint_once(tmp_path, instance):
    (tmp_path / "test.jsonl").write_text("{}\n")
    sensor, defs = make_defs(tmp_path)

    first = tick(sensor, defs, instance, None)
    assert [r.partition_keys for r in first.dynamic_partitions_requests] == [["release_v1"]]
    [req] = first.run_requests
    assert (req.job_name, req.partition_key, req.tags[RELEASE_TAG]) == ("lcb_problems_job", "release_v1",
                                                                          "release_v1")
    assert instance.get_dynamic_partitions("lcb_release") == ["release_v1"]

    waiting = tick(sensor, defs, instance, first.cursor)  # problems not written yet: nothing to do
    assert isinstance(waiting, dg.SkipReason) and "release_v1" in waiting.skip_message

    materialize_partition(instance, "lcb_problems", "release_v1")
    second = tick(sensor, defs, instance, first.cursor)
    assert second.dynamic_partitions_requests == []
    assert sorted(r.partition_key for r in second.run_requests) == ["0|tiny-qwen2", "1k|tiny-llama",
                                                                    "1k|tiny-qwen2"]
    for r in second.run_requests:
        assert r.job_name == "evaluate" and r.tags[RELEASE_TAG] == "release_v1"
        assert r.run_config == {"ops": {"generations": {"config": {"release": "release_v1"}},
                                        "scores": {"config": {"release": "release_v1"}}}}
    assert len({r.run_key for r in second.run_requests}) == 3
    assert json.loads(second.cursor) == {"pending": [], "done": ["release_v1"]}

    again = tick(sensor, defs, instance, second.cursor)  # idempotent
    assert isinstance(again, dg.SkipReason)

    (tmp_path / "test2.jsonl").write_text("{}\n")
    third = tick(sensor, defs, instance, second.cursor)
    assert [r.partition_keys for r in third.dynamic_partitions_requests] == [["release_v2"]]
    assert [(r.job_name, r.partition_key) for r in third.run_requests] == [("lcb_problems_job", "release_v2")]


def test_run_requests_resolve_against_the_jobs(tmp_path, instance):
    """The daemon's own checks: partition keys and run config are valid for the target jobs."""
    (tmp_path / "test.jsonl").write_text("{}\n")
    instance.add_dynamic_partitions("lcb_release", ["release_v1"])
    materialize_partition(instance, "lcb_problems", "release_v1")
    sensor, defs = make_defs(tmp_path)
    ctx = dg.build_sensor_context(instance=instance, cursor=None, definitions=defs)
    # The daemon's path: run requests resolved and checked against the sensor's target jobs, with the instance
    # available for dynamic partition keys as the daemon provides it.
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        data = sensor.evaluate_tick(ctx)
    assert data.run_requests and not data.dynamic_partitions_requests  # already registered
    evals = [r for r in data.run_requests if r.job_name == "evaluate"]
    assert len(evals) == 3
    job = defs.resolve_job_def("evaluate")
    for r in evals:
        run = job.execute_in_process(instance=instance, partition_key=r.partition_key, run_config=r.run_config)
        assert run.success


def test_first_tick_evaluates_only_the_newest_release_unless_backfilling(tmp_path, instance):
    for name in ("test.jsonl", "test2.jsonl", "test3.jsonl"):
        (tmp_path / name).write_text("{}\n")
    sensor, defs = make_defs(tmp_path)
    result = tick(sensor, defs, instance, None)
    assert result.dynamic_partitions_requests[0].partition_keys == ["release_v1", "release_v2", "release_v3"]
    assert [r.partition_key for r in result.run_requests] == ["release_v3"]
    assert json.loads(result.cursor) == {"pending": ["release_v3"], "done": ["release_v1", "release_v2"]}

    with dg.instance_for_test() as fresh:
        sensor, defs = make_defs(tmp_path, backfill_existing=True)
        result = tick(sensor, defs, fresh, None)
        assert [r.partition_key for r in result.run_requests] == ["release_v1", "release_v2", "release_v3"]


def test_a_fresh_cursor_on_a_built_home_redoes_nothing(tmp_path, instance):
    """`dagster dev` on a home the demo built: the sensor's cursor is empty, but the instance knows what is done."""
    (tmp_path / "test.jsonl").write_text("{}\n")
    instance.add_dynamic_partitions("lcb_release", ["release_v1"])
    materialize_partition(instance, "lcb_problems", "release_v1")
    done = dg.MultiPartitionKey({"data_size": "0", "student": "tiny-qwen2"})
    half = dg.MultiPartitionKey({"data_size": "1k", "student": "tiny-qwen2"})  # generated, never scored
    for key, partitions in (("generations", [done, half]), ("scores", [done])):
        for p in partitions:
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=key, partition=p, metadata={"release": "release_v1"}))
    instance.report_runless_asset_event(dg.AssetMaterialization(  # scored on another release only
        asset_key="scores", partition=half, metadata={"release": "release_v0"}))
    sensor, defs = make_defs(tmp_path, evaluated_assets=["generations", "scores"])

    first = tick(sensor, defs, instance, None)
    assert all(r.job_name == "evaluate" for r in first.run_requests)  # problems are not fetched again
    assert sorted(r.partition_key for r in first.run_requests) == ["1k|tiny-llama", "1k|tiny-qwen2"]
    assert json.loads(first.cursor) == {"pending": [], "done": ["release_v1"]}
    assert isinstance(tick(sensor, defs, instance, first.cursor), dg.SkipReason)


def test_plan_tick_and_cursor():
    plan = plan_tick(["r1", "r2"], ReleaseCursor(pending=["r1"], done=[]), problems_materialized={"r1"},
                     checkpoint_partitions=["b", "a", "a"], backfill_existing=False)
    assert plan.problems_requests == ["r2"] and plan.skipped == []
    assert plan.evaluations == [("r1", "a"), ("r1", "b")]
    assert plan.cursor == ReleaseCursor(pending=["r2"], done=["r1"])
    plan = plan_tick(["r1"], ReleaseCursor(), problems_materialized={"r1"}, checkpoint_partitions=["a", "b"],
                     backfill_existing=False, evaluated=[("r1", "a"), ("r0", "b")])
    assert plan.problems_requests == [] and plan.evaluations == [("r1", "b")]
    assert ReleaseCursor.parse(plan.cursor.serialize()) == plan.cursor
    with pytest.raises(ValueError, match="release sensor cursor"):
        ReleaseCursor.parse("[1]")


def test_bad_release_names_from_a_source_fail_loudly(tmp_path, instance):
    sensor, defs = make_defs(tmp_path, discover=lambda src: ["release v1"])
    with pytest.raises(Exception, match="invalid lcb_release partition key 'release v1'"):
        tick(sensor, defs, instance, None)
