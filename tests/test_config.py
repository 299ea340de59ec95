import pytest

from valley_assets.config import PROFILES_DIR, load_study_config


@pytest.mark.parametrize("profile", ["demo", "production"])
def test_profiles_load(profile):
    cfg = load_study_config(PROFILES_DIR / f"{profile}.yaml")
    assert cfg.profile == profile
    assert cfg.data_sizes[:4] == ["0", "1k", "10k", "30k"]


def test_production_defaults_are_the_papers():
    cfg = load_study_config(PROFILES_DIR / "production.yaml")
    assert cfg.student_names == ["qwen2.5-7b-instruct", "llama3.1-8b-instruct"]
    assert cfg.rows_per_k == 1000
    from valley_assets.training.recipe import load_recipe

    assert all(load_recipe(s.recipe).max_length == 32768 for s in cfg.students)
    assert cfg.launch.launcher == "kubernetes" and cfg.evaluation.backend == "vllm"


def test_bad_values_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="data_sizes"):
        load_study_config(PROFILES_DIR / "demo.yaml", overrides={"data_sizes": ["1k", "abc"]})
    with pytest.raises(ValueError, match="ablation"):
        load_study_config(PROFILES_DIR / "demo.yaml", overrides={"ablation": {"rows": {"easy": 0}}})
    with pytest.raises(ValueError, match="students"):
        load_study_config(PROFILES_DIR / "demo.yaml", overrides={"students": []})


def test_unknown_profile_is_explained(monkeypatch):
    monkeypatch.delenv("VALLEY_CONFIG", raising=False)
    monkeypatch.setenv("VALLEY_PROFILE", "nope")
    with pytest.raises(FileNotFoundError, match="built-in profiles"):
        load_study_config()


def test_relative_storage_resolves_against_project_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("VALLEY_PROJECT_DIR", str(tmp_path))
    cfg = load_study_config(PROFILES_DIR / "demo.yaml")
    assert cfg.resolved_storage_root() == str(tmp_path / ".valley/demo")


def test_every_kubernetes_setting_of_a_profile_reaches_the_launcher(tmp_path):
    import yaml

    from valley_assets.launch.job_spec import GPU_TOLERATION
    from valley_assets.launch.kubernetes import KubernetesJobLauncher
    from valley_assets.resources import build_resources

    eks = {"eks.amazonaws.com/nodegroup": "h100-pool"}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                               "values": ["p5.48xlarge"]}]}]}}}
    eks_profile = yaml.safe_load((PROFILES_DIR / "production.yaml").read_text())
    eks_profile["launch"]["kubernetes"].update({
        "node_selector": eks, "affinity": affinity, "checkpoint_pvc": "valley-ckpt", "max_restarts": 3,
        "hf_token_secret": None, "shm_size": "128Gi"})
    (tmp_path / "eks.yaml").write_text(yaml.safe_dump(eks_profile))
    cfg = load_study_config(tmp_path / "eks.yaml")
    launcher = build_resources(cfg)["launcher"]
    assert isinstance(launcher, KubernetesJobLauncher)
    assert launcher.node_selector == eks and launcher.affinity == affinity
    assert launcher.checkpoint_pvc == "valley-ckpt" and launcher.max_restarts == 3 and launcher.shm_size == "128Gi"
    assert launcher.hf_token_secret is None  # an explicit null turns the Secret off
    assert launcher.tolerations == [GPU_TOLERATION]  # left out: the launcher's default
    plain = build_resources(load_study_config(PROFILES_DIR / "production.yaml"))["launcher"]
    assert plain.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert plain.hf_token_secret == "hf-token" and plain.image.endswith("valley-trainer:latest")
    with pytest.raises(ValueError, match="node_selecter"):
        load_study_config(PROFILES_DIR / "production.yaml",
                          overrides={"launch": {"kubernetes": {"node_selecter": eks}}})


def test_the_kubernetes_section_is_the_launchers_own_fields():
    """Issue K: `KubernetesConfig` copied `KubernetesJobLauncher` field by field (and lagged behind it: a profile
    could not set `api_factory`). The section is now validated into the launcher itself."""
    from valley_assets.launch.kubernetes import KubernetesJobLauncher

    cfg = load_study_config(PROFILES_DIR / "production.yaml", overrides={"launch": {"kubernetes": {
        "api_factory": "tests.launch.k8s_double:installed_api", "generation": {"cpu": "2"}}}})
    launcher = cfg.launch.launcher_resource()
    assert isinstance(launcher, KubernetesJobLauncher)
    assert launcher.api_factory == "tests.launch.k8s_double:installed_api"
    assert launcher.generation.cpu == "2" and launcher.generation.memory is None  # unset: the kind's default
    with pytest.raises(ValueError, match="cpux"):  # a misspelt per-kind key is refused, not silently dropped
        load_study_config(PROFILES_DIR / "production.yaml",
                          overrides={"launch": {"kubernetes": {"training": {"cpux": "1"}}}})
    with pytest.raises(ValueError, match="memory_per_gpu"):  # quantities are checked when the profile loads
        load_study_config(PROFILES_DIR / "production.yaml",
                          overrides={"launch": {"kubernetes": {"training": {"memory_per_gpu": "lots"}}}})


def test_one_taco_to_lcb_difficulty_map():
    """Issue K: two copies disagreed on MEDIUM_HARD (`hard` for TACO training problems, `medium` for the demo's)."""
    from valley_assets.data.schema import TACO_DIFFICULTIES, TACO_TO_LCB_DIFFICULTY

    assert TACO_TO_LCB_DIFFICULTY == {"EASY": "easy", "MEDIUM": "medium", "MEDIUM_HARD": "medium", "HARD": "hard",
                                      "VERY_HARD": "hard"}
    assert set(TACO_TO_LCB_DIFFICULTY) == set(TACO_DIFFICULTIES) - {"UNKNOWN_DIFFICULTY"}


def test_each_students_token_budget_lives_in_its_recipe():
    """max_length has one home, the recipe: the SFT entrypoint drops longer examples by it and the pool filters by the
    smallest of the students' (the budgets the profiles used to carry: demo 768, rehearsal 1024, production 32768)."""
    from valley_assets.defs.data import pool_token_budget
    from valley_assets.training.recipe import load_recipe

    budgets = {}
    for profile in ("demo", "rehearsal", "production"):
        cfg = load_study_config(PROFILES_DIR / f"{profile}.yaml")
        budgets[profile] = pool_token_budget(cfg.students)
        assert {load_recipe(s.recipe).max_length for s in cfg.students} == {budgets[profile]}
    assert budgets == {"demo": 768, "rehearsal": 1024, "production": 32768}
    with pytest.raises(ValueError, match="max_length"):  # a profile may not set it beside the recipe
        load_study_config(PROFILES_DIR / "demo.yaml", overrides={"students": [
            {"name": "tiny-qwen2", "model": "demo:tiny-qwen2", "recipe": "demo-tiny", "max_length": 10}]})
