"""The code location loads on both profiles with the same assets; only resources differ."""

import dagster as dg
import pytest

from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.definitions import build_definitions

EXPECTED_ASSETS = {
    "training_problems", "lcb_problems", "teacher_traces", "extra_teacher_traces", "distill_pool", "distill_subset",
    "ablation_subset",
    "student_base_model", "sft_checkpoint", "ablation_checkpoint", "lcb_generations", "lcb_scores",
    "ablation_generations", "ablation_scores", "valley_curve", "ablation_report", "valley_report",
}


@pytest.fixture(scope="module", params=["demo", "production"])
def profile_defs(request, tmp_path_factory):
    cfg = load_study_config(PROFILES_DIR / f"{request.param}.yaml",
                            overrides={"storage_root": str(tmp_path_factory.mktemp(request.param))})
    return request.param, cfg, build_definitions(cfg)


def test_same_graph_on_both_profiles(profile_defs):
    _, cfg, defs = profile_defs
    graph = defs.get_repository_def().asset_graph
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == EXPECTED_ASSETS
    ckpt = graph.get(dg.AssetKey("sft_checkpoint")).partitions_def
    assert isinstance(ckpt, dg.MultiPartitionsDefinition)
    assert [d.name for d in ckpt.partitions_defs] == ["data_size", "student"]
    students = ckpt.get_partitions_def_for_dimension("student").get_partition_keys()
    assert students == cfg.student_names


def test_launcher_and_sources_follow_the_profile(profile_defs):
    name, _, defs = profile_defs
    launcher = defs.resources["launcher"]
    assert type(launcher).__name__ == ("LocalProcessLauncher" if name == "demo" else "KubernetesJobLauncher")
    expected = {"problem_source": ("DemoProblemSource", "TacoProblemSource"),
                "benchmark": ("DemoBenchmark", "LCBBenchmark"), "teacher": ("DemoTeacher", "OCR2Teacher")}
    for key, (demo, production) in expected.items():
        assert type(defs.resources[key]).__name__ == (demo if name == "demo" else production), key


def test_every_resource_is_configurable_and_every_asset_takes_it_typed(profile_defs):
    """Issue K: resources were `hardcoded_resource` wrappers read as untyped `context.resources.x`."""
    from valley_assets.resources import ConfigurableResourceFactory

    _, _, defs = profile_defs
    for key, resource in defs.resources.items():
        assert isinstance(resource, (dg.ConfigurableResource, ConfigurableResourceFactory)), key
    for assets_def in defs.assets:
        # a typed parameter is what Dagster reads as a required resource key of the op's function
        params = set(assets_def.op.compute_fn.decorated_fn.__code__.co_varnames)
        assert assets_def.required_resource_keys - {"io_manager"} <= params, assets_def.key


def test_jobs_and_release_sensor(profile_defs):
    _, _, defs = profile_defs
    repo = defs.get_repository_def()
    assert {"evaluate_checkpoints", "train_and_evaluate", "fetch_lcb_release"} <= set(repo.job_names)
    assert repo.has_sensor_def("lcb_release_sensor")


def test_module_level_defs_use_the_demo_profile(monkeypatch):
    import importlib

    monkeypatch.delenv("VALLEY_CONFIG", raising=False)
    monkeypatch.setenv("VALLEY_PROFILE", "demo")
    import valley_assets.definitions as module

    module = importlib.reload(module)
    assert isinstance(module.defs, dg.Definitions)
