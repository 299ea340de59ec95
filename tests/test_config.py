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
    assert all(s.max_length == 32768 for s in cfg.students)
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
