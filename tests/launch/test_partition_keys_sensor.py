"""A deployed instance registers the profile's partitions and drops invalid UI-added keys by itself (defect 9).

Before: only `valley demo` (the study runner) registered `data_sizes` / releases, and a `bad|key` added in the UI
stayed until a run on it failed. The sensor is evaluated here against a real Dagster instance: once by the daemon's
own sensor loop over the code location loaded as a deployment loads it (a gRPC code server, `VALLEY_CONFIG`), and
tick by tick with the requests applied the way the daemon applies them.
"""

import logging

import dagster as dg
import pytest
import yaml
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.sensor import execute_sensor_iteration

from valley_assets import partitions as P
from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.definitions import build_definitions
from valley_assets.defs.partition_keys import SENSOR_NAME


def production_config(tmp_path) -> tuple:
    raw = yaml.safe_load((PROFILES_DIR / "production.yaml").read_text())
    raw["storage_root"] = str(tmp_path / "study")
    path = tmp_path / "production.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, load_study_config(path)


def apply(instance: dg.DagsterInstance, result) -> None:
    """What the daemon does with a tick's dynamic partition requests."""
    for request in getattr(result, "dynamic_partitions_requests", None) or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def test_the_sensor_is_part_of_every_profile_and_runs_by_default(tmp_path):
    _, cfg = production_config(tmp_path)
    for defs in (build_definitions(cfg), build_definitions(load_study_config(PROFILES_DIR / "demo.yaml"))):
        sensor = defs.get_repository_def().get_sensor_def(SENSOR_NAME)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_profile_keys_are_registered_and_invalid_ui_keys_deleted(tmp_path):
    _, cfg = production_config(tmp_path)
    defs = build_definitions(cfg)
    sensor = defs.get_repository_def().get_sensor_def(SENSOR_NAME)
    with dg.instance_for_test() as instance:
        def tick():
            result = sensor(dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()))
            apply(instance, result)
            return result

        first = tick()
        assert isinstance(first, dg.SensorResult)
        assert instance.get_dynamic_partitions(P.DATA_SIZE) == cfg.data_sizes == ["0", "1k", "10k", "30k"]
        assert instance.get_dynamic_partitions("lcb_release") == cfg.benchmark.releases
        assert isinstance(tick(), dg.SkipReason)  # nothing left to do: nothing requested twice

        # What the UI's partition picker lets through: Dagster validates nothing.
        instance.add_dynamic_partitions(P.DATA_SIZE, ["3k", "bad|key", "3K"])
        instance.add_dynamic_partitions("lcb_release", ["release v7"])
        third = tick()
        deleted = {(r.partitions_def_name, k) for r in third.dynamic_partitions_requests
                   if isinstance(r, dg.DeleteDynamicPartitionsRequest) for k in r.partition_keys}
        assert deleted == {(P.DATA_SIZE, "bad|key"), (P.DATA_SIZE, "3K"), ("lcb_release", "release v7")}
        assert instance.get_dynamic_partitions(P.DATA_SIZE) == ["0", "1k", "10k", "30k", "3k"]
        assert instance.get_dynamic_partitions("lcb_release") == ["release_v6"]


@pytest.mark.slow
def test_the_daemon_registers_the_keys_of_a_deployed_code_location(tmp_path, monkeypatch):
    """The daemon's sensor loop against the code location served by a gRPC code server, as in a deployment."""
    path, cfg = production_config(tmp_path)
    monkeypatch.setenv("VALLEY_CONFIG", str(path))
    target = ModuleTarget(module_name="valley_assets.definitions", attribute="defs", working_directory=None,
                          location_name="valley")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(P.DATA_SIZE, ["1k", "-1k"])
        with create_test_daemon_workspace_context(target, instance) as workspace:
            entry = next(iter(workspace.create_request_context().get_code_location_entries().values()))
            assert entry.code_location, entry.load_error
            list(execute_sensor_iteration(workspace, logging.getLogger("test-daemon"), None, None))
        assert sorted(instance.get_dynamic_partitions(P.DATA_SIZE), key=P.data_size_thousands) == cfg.data_sizes
        assert instance.get_dynamic_partitions("lcb_release") == ["release_v6"]
        # The daemon recorded what it applied on the tick (no runs requested: Dagster marks it SKIPPED).
        [tick] = instance.get_ticks(*_sensor_origin(instance))
        assert tick.status.value != "FAILURE", tick.error
        applied = {(r.partitions_def_name, tuple(r.added_partitions or ()), tuple(r.deleted_partitions or ()))
                   for r in tick.tick_data.dynamic_partitions_request_results}
        assert applied == {(P.DATA_SIZE, (), ("-1k",)), (P.DATA_SIZE, ("0", "10k", "30k"), ()),
                           ("lcb_release", ("release_v6",), ())}, applied


def _sensor_origin(instance):
    [state] = [s for s in instance.all_instigator_state() if s.instigator_name == SENSOR_NAME]
    return state.instigator_origin_id, state.selector_id
