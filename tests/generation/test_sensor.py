"""The release sensor against a minimal Definitions with the study's partition shapes."""

import json

import dagster as dg
import pytest

from valley_assets.generation.sensor import RELEASE_TAG, ReleaseCursor, build_release_sensor, next_check, plan_tick

lcb_release = dg.DynamicPartitionsDefinition(name="lcb_release")


@dg.asset(partitions_def=lcb_release)
def lcb_problems() -> None: ...


problems_job = dg.define_asset_job("lcb_problems_job", selection=[lcb_problems], partitions_def=lcb_release)


def make_defs(source, **kw):
    sensor = build_release_sensor(source=str(source), problems_job=problems_job, problems_asset="lcb_problems",
                                  release_partitions=lcb_release, **kw)
    return sensor, dg.Definitions(assets=[lcb_problems], jobs=[problems_job], sensors=[sensor])


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
        yield inst


def test_new_release_is_registered_and_its_problems_fetched_once(tmp_path, instance):
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
    # Evaluation is not the sensor's: the generations' automation condition follows the newest problems.
    assert second.run_requests == [] and second.dynamic_partitions_requests == []
    assert {k: v for k, v in json.loads(second.cursor).items() if k in ("pending", "done")} == {
        "pending": [], "done": ["release_v1"]}

    again = tick(sensor, defs, instance, second.cursor)  # idempotent
    assert isinstance(again, dg.SkipReason)

    (tmp_path / "test2.jsonl").write_text("{}\n")
    third = tick(sensor, defs, instance, second.cursor)
    assert [r.partition_keys for r in third.dynamic_partitions_requests] == [["release_v2"]]
    assert [(r.job_name, r.partition_key) for r in third.run_requests] == [("lcb_problems_job", "release_v2")]


def test_run_requests_resolve_against_the_job(tmp_path, instance):
    """The daemon's own checks: partition keys are valid for the target job, which runs."""
    (tmp_path / "test.jsonl").write_text("{}\n")
    instance.add_dynamic_partitions("lcb_release", ["release_v1"])
    sensor, defs = make_defs(tmp_path)
    ctx = dg.build_sensor_context(instance=instance, cursor=None, definitions=defs)
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        data = sensor.evaluate_tick(ctx)
    [request] = data.run_requests
    assert not data.dynamic_partitions_requests  # already registered
    run = defs.resolve_job_def("lcb_problems_job").execute_in_process(instance=instance,
                                                                       partition_key=request.partition_key)
    assert run.success


def test_first_tick_fetches_only_the_newest_release_unless_backfilling(tmp_path, instance):
    for name in ("test.jsonl", "test2.jsonl", "test3.jsonl"):
        (tmp_path / name).write_text("{}\n")
    sensor, defs = make_defs(tmp_path)
    instance.add_dynamic_partitions("lcb_release", ["release_v2"])  # a profile's release, registered at start-up
    result = tick(sensor, defs, instance, None)
    # the older ones are not registered: the newest stays the last registered release (LastPartitionMapping)
    assert result.dynamic_partitions_requests[0].partition_keys == ["release_v3"]
    assert instance.get_dynamic_partitions("lcb_release") == ["release_v2", "release_v3"]
    assert [r.partition_key for r in result.run_requests] == ["release_v3"]
    cursor = json.loads(result.cursor)
    assert (cursor["pending"], cursor["done"]) == (["release_v3"], ["release_v1", "release_v2"])

    with dg.instance_for_test() as fresh:
        sensor, defs = make_defs(tmp_path, backfill_existing=True)
        result = tick(sensor, defs, fresh, None)
        assert [r.partition_key for r in result.run_requests] == ["release_v1", "release_v2", "release_v3"]


def test_a_fresh_cursor_on_a_built_home_redoes_nothing(tmp_path, instance):
    """`dagster dev` on a home the demo built: the sensor's cursor is empty, but the instance knows what is done."""
    (tmp_path / "test.jsonl").write_text("{}\n")
    instance.add_dynamic_partitions("lcb_release", ["release_v1"])
    materialize_partition(instance, "lcb_problems", "release_v1")
    sensor, defs = make_defs(tmp_path)
    first = tick(sensor, defs, instance, None)
    assert first.run_requests == [] and first.dynamic_partitions_requests == []
    assert json.loads(first.cursor)["done"] == ["release_v1"]
    assert isinstance(tick(sensor, defs, instance, first.cursor), dg.SkipReason)


def test_plan_tick_and_cursor():
    plan = plan_tick(["r1", "r2"], ReleaseCursor(pending=["r1"], done=[]), problems_materialized={"r1"},
                     backfill_existing=False, now=5.0)
    assert plan.problems_requests == ["r2"] and plan.skipped == []
    assert plan.cursor == ReleaseCursor(pending=["r2"], done=["r1"], checked_at=5.0)
    assert ReleaseCursor.parse(plan.cursor.serialize()) == plan.cursor
    assert ReleaseCursor.parse('{"pending": [], "done": ["r1"]}') == ReleaseCursor(done=["r1"])  # older cursors
    with pytest.raises(ValueError, match="release sensor cursor"):
        ReleaseCursor.parse("[1]")


def test_cron_drives_the_listing(tmp_path, instance):
    """`automation.release_check_cron`: a tick lists the source only once a cron time passed since the last
    listing; between two, a new file waits for the next cron time."""
    day = 86400.0
    monday_0700 = 1_700_000_000 - (1_700_000_000 % day) + 7 * 3600  # 07:00 UTC on some day
    assert next_check("0 6 * * *", monday_0700) == monday_0700 - 3600 + day  # 06:00 the next day
    assert next_check(None, monday_0700) is None and next_check("0 6 * * *", None) is None

    (tmp_path / "test.jsonl").write_text("{}\n")
    listed: list[str] = []

    def discover(source):
        listed.append(source)
        return sorted(f"release_v{p.stem[4:] or 1}" for p in tmp_path.glob("test*.jsonl"))

    sensor, defs = make_defs(tmp_path, cron="0 6 * * *", discover=discover)
    first = tick(sensor, defs, instance, None)  # never listed: list now
    assert [r.partition_key for r in first.run_requests] == ["release_v1"] and len(listed) == 1
    (tmp_path / "test2.jsonl").write_text("{}\n")
    second = tick(sensor, defs, instance, first.cursor)  # the next 06:00 has not come
    assert isinstance(second, dg.SkipReason) and "next listing" in second.skip_message and len(listed) == 1

    yesterday = json.loads(first.cursor) | {"checked_at": json.loads(first.cursor)["checked_at"] - day}
    third = tick(sensor, defs, instance, json.dumps(yesterday))  # a 06:00 passed since: listed again
    assert len(listed) == 2 and [r.partition_key for r in third.run_requests] == ["release_v2"]


def test_bad_release_names_from_a_source_fail_loudly(tmp_path, instance):
    sensor, defs = make_defs(tmp_path, discover=lambda src: ["release v1"])
    with pytest.raises(Exception, match="invalid lcb_release partition key 'release v1'"):
        tick(sensor, defs, instance, None)


def test_a_hub_revision_change_is_a_new_release(tmp_path, instance):
    """The hub repo's commit changes with the same file names (a fixed test case): the newest release is a new
    release at that commit, `release_v1-rev<sha12>`, registered and fetched once."""
    (tmp_path / "test.jsonl").write_text("{}\n")
    revision = {"sha": "a" * 40}
    sensor, defs = make_defs(tmp_path, revision_of=lambda source: revision["sha"])
    first = tick(sensor, defs, instance, None)
    assert [r.partition_key for r in first.run_requests] == ["release_v1"]
    materialize_partition(instance, "lcb_problems", "release_v1")
    second = tick(sensor, defs, instance, first.cursor)
    assert second.run_requests == [] and json.loads(second.cursor)["revision"] == "a" * 40

    revision["sha"] = "b" * 40
    third = tick(sensor, defs, instance, second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["release_v1-rev" + "b" * 12]
    assert [r.partition_keys for r in third.dynamic_partitions_requests] == [["release_v1-rev" + "b" * 12]]
    assert isinstance(tick(sensor, defs, instance, third.cursor), dg.SkipReason)  # once

    (tmp_path / "test2.jsonl").write_text("{}\n")  # a new file with a new commit: the new release, plainly
    revision["sha"] = "c" * 40
    fourth = tick(sensor, defs, instance, third.cursor)
    assert [r.partition_key for r in fourth.run_requests] == ["release_v2"]
