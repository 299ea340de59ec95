"""The study config: one pydantic model, one YAML file per profile.

`VALLEY_PROFILE` picks `valley_assets/profiles/<profile>.yaml` (default `demo`); `VALLEY_CONFIG` points at any other
YAML file. Relative storage roots resolve against `VALLEY_PROJECT_DIR` (default: the current directory), so the demo's
artefacts land inside the repo folder next to its Dagster home.

The sections live by what they are about (`config_study`: what is studied; `config_execution`: how the work
runs); this module puts them together as `StudyConfig`, loads profiles, and is the import path of every section.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import Field, field_validator, model_validator

from valley_assets.config_execution import (
    AutomationConfig,
    EndpointConfig,
    EvaluationConfig,
    ExtraTeacherConfig,
    GradingConfig,
    GradingKubernetesConfig,
    LaunchConfig,
    TeacherConfig,
    TrackingConfig,
)
from valley_assets.config_study import (
    AFTER_CUTOFF,
    AblationConfig,
    AnalysisConfig,
    BenchmarkConfig,
    DataConfig,
    DateWindow,
    DemoDataConfig,
    HubDataConfig,
    PoolConfig,
    StudentSpec,
    _Strict,
)
from valley_assets.partitions import validate_data_size_key

# The import path of every section: the assets, resources, tests and docs import them from `valley_assets.config`.
__all__ = [
    "AFTER_CUTOFF", "AblationConfig", "AnalysisConfig", "AutomationConfig", "BenchmarkConfig", "DataConfig",
    "DateWindow", "DemoDataConfig", "EndpointConfig", "EvaluationConfig", "ExtraTeacherConfig", "GradingConfig",
    "GradingKubernetesConfig", "HubDataConfig", "LaunchConfig", "PROFILES_DIR", "PoolConfig", "StudentSpec",
    "StudyConfig", "TeacherConfig", "TrackingConfig", "load_study_config",
]

PROFILES_DIR = Path(__file__).parent / "profiles"


class StudyConfig(_Strict):
    profile: str
    storage_root: str
    students: list[StudentSpec]
    data_sizes: list[str] = Field(description="data_size partitions registered at start-up")
    rows_per_k: int = Field(default=1000, ge=1, description="rows behind '1k'; the demo shrinks it")
    data: DataConfig
    pool: PoolConfig = PoolConfig()
    benchmark: BenchmarkConfig
    launch: LaunchConfig
    evaluation: EvaluationConfig
    grading: GradingConfig = GradingConfig()
    teacher: TeacherConfig = TeacherConfig()
    ablation: AblationConfig
    tracking: TrackingConfig = TrackingConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    automation: AutomationConfig = AutomationConfig()

    @field_validator("data_sizes")
    @classmethod
    def _valid_sizes(cls, v: list[str]) -> list[str]:
        return [validate_data_size_key(k) for k in v]

    @model_validator(mode="after")
    def _evaluation_gpus_fit_the_backend(self) -> StudyConfig:
        self.launch.generation_gpus(self.evaluation.backend, self.evaluation.tensor_parallel_size)
        return self

    @model_validator(mode="after")
    def _cutoffs_for_cutoff_windows(self) -> StudyConfig:
        if any(w.after_student_cutoff for w in self.benchmark.date_windows):
            missing = [s.name for s in self.students if s.cutoff is None]
            if missing:
                raise ValueError(f"benchmark.date_windows has an after_student_cutoff window, but students {missing} "
                                 "have no `cutoff` (ISO date)")
        return self

    @model_validator(mode="after")
    def _unique_students(self) -> StudyConfig:
        names = [s.name for s in self.students]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"students must be a non-empty list of unique names, got {names}")
        return self

    def student(self, name: str) -> StudentSpec:
        for s in self.students:
            if s.name == name:
                return s
        raise KeyError(f"unknown student {name!r}; the profile defines {[s.name for s in self.students]}")

    @property
    def student_names(self) -> list[str]:
        return [s.name for s in self.students]

    def resolved_storage_root(self) -> str:
        if "://" in self.storage_root or os.path.isabs(self.storage_root):
            return self.storage_root
        return str(Path(os.environ.get("VALLEY_PROJECT_DIR", os.getcwd())) / self.storage_root)


def load_study_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> StudyConfig:
    """Load a profile (by `VALLEY_CONFIG`, else `VALLEY_PROFILE`, default demo), deep-merging `overrides`."""
    if path is None:
        path = os.environ.get("VALLEY_CONFIG") or PROFILES_DIR / f"{os.environ.get('VALLEY_PROFILE', 'demo')}.yaml"
    path = Path(path)
    if not path.exists():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"study config {path} not found; built-in profiles: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    if overrides:
        raw = _deep_merge(raw, overrides)
    try:
        return StudyConfig.model_validate(raw)
    except Exception as exc:  # pydantic names the field; say which file it came from
        raise ValueError(f"invalid study config {path}:\n{exc}") from exc


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
