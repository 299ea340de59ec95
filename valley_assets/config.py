"""The study config: one pydantic model, one YAML file per profile.

`VALLEY_PROFILE` picks `valley_assets/profiles/<profile>.yaml` (default `demo`); `VALLEY_CONFIG` points at any other
YAML file. Relative storage roots resolve against `VALLEY_PROJECT_DIR` (default: the current directory), so the demo's
artefacts land inside the repo folder next to its Dagster home.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from valley_assets.partitions import ABLATION_ARMS, validate_data_size_key, validate_release_key

PROFILES_DIR = Path(__file__).parent / "profiles"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StudentSpec(_Strict):
    name: str = Field(description="partition key of the student, e.g. qwen2.5-7b-instruct")
    model: str = Field(description="hub id or local folder; 'demo:tiny-qwen2' is built by the demo world")
    recipe: str = Field(description="training recipe name (valley_assets/training/recipes) or a YAML path; its "
                                    "max_length is the student's token budget, for the pool filter and for SFT")
    cutoff: str | None = Field(
        default=None, description="the base model's training-data cutoff (ISO date): a date window with "
                                  "`after_student_cutoff` scores this student on the contests after it")

    @field_validator("cutoff")
    @classmethod
    def _iso_cutoff(cls, v: str | None) -> str | None:
        from datetime import date

        if v is not None:
            try:
                date.fromisoformat(v)
            except ValueError:
                raise ValueError(f"students: cutoff {v!r} is not an ISO date (YYYY-MM-DD)") from None
        return v

    @field_validator("name")
    @classmethod
    def _name_is_partition_safe(cls, v: str) -> str:
        validate_release_key(v)  # same character rules as release keys
        return v


class DemoDataConfig(_Strict):
    n_train_problems: int = 360
    n_eval_problems: int = 36
    wrong_fraction: float = 0.3
    defect_fraction: float = 0.04
    pretrain_steps: int = Field(default=300, ge=0, description="generic-text pre-training of the tiny student")


class HubDataConfig(_Strict):
    """Production sources. Each is a hub id or a local/object-store folder (same `datasets` code path)."""

    ocr2: str = "nvidia/OpenCodeReasoning-2"
    taco: str = "BAAI/TACO"
    apps: str = "codeparrot/apps"
    code_contests: str = "deepmind/code_contests"
    codeforces: str = "open-r1/codeforces"
    max_rows: int | None = Field(default=None, description="read only the first N OCR2 rows (smoke runs)")


class DataConfig(_Strict):
    source: Literal["demo", "hub"]
    seed: int = 0
    demo: DemoDataConfig = DemoDataConfig()
    hub: HubDataConfig = HubDataConfig()


class PoolConfig(_Strict):
    seed: int = 0
    chars_per_token_low: float = Field(
        default=2.0, description="fewest characters (bytes) a token can stand for: the length pre-filter's upper bound"
    )
    chars_per_token_high: float | None = Field(
        default=None, description="most characters a token can stand for; rows below chars/this skip tokenizing"
    )
    prompt_overhead_tokens: int = Field(default=256, ge=0, description="tokens of the prompt template and chat markup")
    ngram: int | None = Field(
        default=13, ge=5,
        description="word n-gram length of the decontamination overlap test; null = exact normalised text only")


AFTER_CUTOFF = "after_cutoff"  # date_window label of the per-student window after each student's cutoff


class DateWindow(_Strict):
    """Problems whose contest_date falls in [start, end] (ISO dates, both inclusive, either side open): LiveCodeBench
    is read per window after a model's cutoff, which is how its leaderboard avoids contamination."""

    start: str | None = None
    end: str | None = None
    after_student_cutoff: bool = Field(
        default=False, description="per student: contests after that student's `cutoff` (up to `end`, if set); "
                                   "rows carry date_window 'after_cutoff' (or 'after_cutoff..<end>')")

    @property
    def label(self) -> str:
        if self.after_student_cutoff:
            return AFTER_CUTOFF + (f"..{self.end}" if self.end else "")
        return f"{self.start or ''}..{self.end or ''}"

    def bounds(self, cutoff: str | None) -> tuple[str | None, str | None]:
        """(start, end), both inclusive; an after-cutoff window starts the day after `cutoff`."""
        if not self.after_student_cutoff:
            return self.start, self.end
        from datetime import date, timedelta

        if cutoff is None:
            raise ValueError(f"date window {self.label!r} needs the student's `cutoff`")
        return (date.fromisoformat(cutoff) + timedelta(days=1)).isoformat(), self.end

    @model_validator(mode="after")
    def _iso_dates(self) -> DateWindow:
        from datetime import date

        if self.after_student_cutoff and self.start is not None:
            raise ValueError("benchmark.date_windows: an after_student_cutoff window takes no start (it starts "
                             "after each student's cutoff)")

        for side in ("start", "end"):
            value = getattr(self, side)
            if value is not None:
                try:
                    date.fromisoformat(value)
                except ValueError:
                    raise ValueError(f"benchmark.date_windows: {side} {value!r} is not an ISO date (YYYY-MM-DD)") from None
        if self.start is None and self.end is None and not self.after_student_cutoff:
            raise ValueError("benchmark.date_windows: a window needs a start or an end (all problems are always scored)")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"benchmark.date_windows: start {self.start} is after end {self.end}")
        return self


class BenchmarkConfig(_Strict):
    source: Literal["demo", "lcb"]
    lcb: str = Field(default="livecodebench/code_generation_lite", description="hub id or folder of test*.jsonl")
    releases: list[str] = Field(description="releases registered as lcb_release partitions at start-up")
    start_date: str | None = None
    end_date: str | None = None
    date_windows: list[DateWindow] = Field(
        default_factory=list, description="contest-date windows scored besides all problems (scores table rows with "
                                          "date_window '<start>..<end>')")

    def scoring_windows(self, cutoff: str | None = None) -> list[tuple[str, str | None, str | None]]:
        """(label, start, end) of all problems first, then each configured window, as
        `science.metrics.score_rows` takes them; `cutoff`: the scored student's (after-cutoff windows)."""
        return [("all", None, None), *((w.label, *w.bounds(cutoff)) for w in self.date_windows)]

    @field_validator("releases")
    @classmethod
    def _valid_releases(cls, v: list[str]) -> list[str]:
        return [validate_release_key(r) for r in v]


class LaunchConfig(_Strict):
    launcher: Literal["local", "kubernetes"]
    training_gpus: int = Field(default=0, ge=0, description="GPUs per SFT run (0: CPU; > gpus_per_node: multi-node)")
    evaluation_gpus: int | None = Field(
        default=None, ge=0, description="GPUs per generation run of the evaluation assets; default: "
                                        "evaluation.tensor_parallel_size for vllm, 0 (CPU) for transformers")
    kubernetes: dict[str, Any] = Field(
        default_factory=dict, description="the fields of launch.kubernetes.KubernetesJobLauncher, validated into it "
                                          "(one definition: what a profile leaves out keeps the launcher's default)")

    @model_validator(mode="after")
    def _kubernetes_section_is_a_launcher(self) -> LaunchConfig:
        if self.kubernetes or self.launcher == "kubernetes":
            self.launcher_resource("kubernetes")  # a misspelt or bad field fails when the profile loads
        return self

    def launcher_resource(self, launcher: str | None = None):
        """The launcher resource of this section: `LocalProcessLauncher`, or `KubernetesJobLauncher` validated from
        `kubernetes` (a ValueError naming the field when it does not fit)."""
        if (launcher or self.launcher) == "local":
            from valley_assets.launch.local import LocalProcessLauncher

            return LocalProcessLauncher()
        from valley_assets.launch.kubernetes import KubernetesJobLauncher

        try:
            return KubernetesJobLauncher(**self.kubernetes)
        except Exception as exc:  # pydantic's and Dagster's config errors both name the field
            raise ValueError(f"launch.kubernetes: {exc}") from None

    def generation_gpus(self, backend: str, tensor_parallel_size: int) -> int:
        """GPUs of one evaluation generation launch; a ValueError naming the fields when they disagree."""
        if backend == "vllm":
            gpus = tensor_parallel_size if self.evaluation_gpus is None else self.evaluation_gpus
            if gpus != tensor_parallel_size:
                raise ValueError(f"launch.evaluation_gpus={gpus} but evaluation.tensor_parallel_size="
                                 f"{tensor_parallel_size}: vLLM shards the model over exactly its tensor-parallel "
                                 "GPUs, so give both the same value")
            return gpus
        gpus = self.evaluation_gpus or 0
        if gpus > 1:
            raise ValueError(f"launch.evaluation_gpus={gpus}: the transformers backend runs on one device (0 or 1)")
        return gpus


class EvaluationConfig(_Strict):
    backend: Literal["transformers", "vllm"]
    prompt_id: str = "lcb-reasoning"
    n_samples: int = Field(default=4, ge=1)
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = Field(default=512, gt=0)
    chunk_size: int = Field(default=64, gt=0)
    seed: int = 0
    tensor_parallel_size: int = 1
    backend_options: dict[str, int | float | str] = Field(
        default_factory=dict, description="passed to the backend (transformers: batch_size, num_threads, dtype)")


class EndpointConfig(_Strict):
    """An OpenAI-compatible chat-completions endpoint (valley_assets/generation/openai_backend.py)."""

    base_url: str = Field(description="e.g. https://api.example.com/v1 or http://vllm-kat:8000/v1")
    api_key_env: str | None = Field(default=None, description="environment variable holding the API key")
    concurrency: int = Field(default=8, ge=1, description="requests in flight")
    n_per_request: int = Field(default=1, ge=1, description="samples per request (n); 1 = exact token counts")
    max_retries: int = Field(default=6, ge=0, description="retries on 408/429/5xx and connection errors")
    timeout_s: float = Field(default=1800.0, gt=0, description="per request; 32K-token answers take minutes")
    backoff_s: float = Field(default=2.0, ge=0)
    backoff_max_s: float = Field(default=120.0, ge=0)
    send_seed: bool = Field(default=True, description="send a per-sample seed (servers that reject it: false)")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="more request fields, e.g. top_k")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"base_url must be an http(s) URL such as http://host:8000/v1, got {v!r}")
        return v

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v):
            raise ValueError(f"api_key_env must be an environment variable name (the key itself never goes in the "
                             f"config), got {v!r}")
        return v


class ExtraTeacherConfig(_Strict):
    """One more teacher whose traces join the pool beside OCR2's (docs/teachers.md)."""

    name: str = Field(description="names its shards, trace ids and the `source` column, e.g. kat-v1-40b")
    backend: Literal["openai", "vllm"] = Field(description="an HTTP endpoint, or vLLM as a GPU Job via the launcher")
    model: str = Field(description="the endpoint's model name, or the hub id / folder vLLM loads")
    problems: str = Field(default="training", description="'training' (the training_problems asset) or the path/URL "
                                                          "of a JSONL of Problem records with tests")
    prompt_id: str = "lcb-reasoning"
    n_samples: int = Field(default=1, ge=1, description="traces per problem")
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = Field(default=32768, gt=0)
    seed: int = 0
    chunk_size: int = Field(default=64, ge=1, description="problems per resumable chunk")
    max_chunks: int | None = Field(default=None, ge=1, description="stop after this many chunks (time-boxed runs)")
    untested: Literal["skip", "unlabelled"] = Field(
        default="skip", description="problems without tests: not generated, or generated into unlabelled/ shards "
                                    "(judgement 'unknown', pass_rate -1) that the pool does not read")
    dataset: str = Field(default="valley-extra", description="`dataset` of rows whose problem record has none")
    license: str | None = None
    endpoint: EndpointConfig | None = None
    tensor_parallel_size: int = Field(default=1, ge=1, description="vllm backend")
    backend_options: dict[str, Any] = Field(default_factory=dict, description="vllm: more VLLMBackend fields")

    @field_validator("name")
    @classmethod
    def _name_is_file_safe(cls, v: str) -> str:
        validate_release_key(v)  # the same character rules: it becomes file names and ids
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ExtraTeacherConfig:
        from valley_assets.generation.prompts import PROMPTS

        where = f"teacher.extra[{self.name}]"
        if self.prompt_id not in PROMPTS:
            raise ValueError(f"{where}.prompt_id: unknown {self.prompt_id!r}; registered: {sorted(PROMPTS)}")
        if self.backend == "openai" and self.endpoint is None:
            raise ValueError(f"{where}: backend 'openai' needs an `endpoint` section (base_url, api_key_env, ...)")
        if self.backend == "vllm" and self.endpoint is not None:
            raise ValueError(f"{where}: `endpoint` is for backend 'openai'; vllm loads `model` itself")
        if self.backend == "openai" and self.backend_options:
            raise ValueError(f"{where}: backend_options are for backend 'vllm'; endpoint settings go in `endpoint`")
        try:
            self.sampling()
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        return self

    def sampling(self):
        from valley_assets.generation.interface import SamplingConfig

        return SamplingConfig(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                              seed=self.seed)


class TeacherConfig(_Strict):
    extra: list[ExtraTeacherConfig] = Field(default_factory=list, description="teachers beyond OCR2 / the demo's")

    @field_validator("extra")
    @classmethod
    def _unique_names(cls, v: list[ExtraTeacherConfig]) -> list[ExtraTeacherConfig]:
        names = [t.name for t in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"teacher.extra names must be unique; repeated: {dupes}")
        return v


class GradingKubernetesConfig(_Strict):
    """The `kubernetes` grading backend's Job (valley_assets/grading/kubernetes_backend.py, k8s/README.md section
    "Grading Jobs"): fields of `KubernetesGradingSettings`. namespace, kubeconfig_file and in_cluster default to
    `launch.kubernetes`'s, so grading Jobs go where the launcher's Jobs go."""

    namespace: str | None = None
    image: str = Field(default="valley-sandbox:latest", description="the sandbox image (sandbox/Dockerfile), pushed "
                                                                     "where the cluster pulls from")
    runtime_class_name: str | None = Field(
        default="gvisor", description="RuntimeClass of the grading pods: gvisor (GKE Sandbox), kata, or null for the "
                                      "node's default runtime")
    samples_per_shard: int = Field(default=1000, ge=1)
    max_pods: int = Field(default=64, ge=1, description="shards (= pods at once) at most")
    cpu: str = Field(default="1", description="request and limit per pod: one runner grades one sample at a time")
    memory: str = Field(default="4Gi", description="request and limit per pod: the shard's tests, the runner and "
                                                   "the program's grading.memory_mb")
    scratch_size: str = Field(default="64Mi", description="the programs' working directory (memory-backed)")
    tmp_size: str = "16Mi"
    shm_size: str = "64Mi"
    pod_retries: int = Field(default=3, ge=0, description="failed pods (not disruptions) per shard the Job allows")
    rounds: int = Field(default=2, ge=1, description="grading Jobs at most (another picks up verdicts lost in logs)")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    timeout_s: float | None = Field(default=None, gt=0)
    poll_interval_s: float = Field(default=5.0, gt=0)
    ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    kubeconfig_file: str | None = None
    in_cluster: bool | None = None
    api_factory: str | None = None

    @model_validator(mode="after")
    def _quantities(self) -> GradingKubernetesConfig:
        from valley_assets.launch.quantity import check_quantity

        for name in ("cpu", "memory", "scratch_size", "tmp_size", "shm_size"):
            check_quantity(getattr(self, name), f"grading.kubernetes.{name}")
        return self

    def settings(self, launch_kubernetes: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of `KubernetesGradingSettings`, unset connection fields taken from the profile's
        `launch.kubernetes` section (the launcher's own defaults where it names none: namespace valley, in-cluster)."""
        defaults = {"namespace": "valley", "kubeconfig_file": None, "in_cluster": True}
        settings = self.model_dump()
        for name, default in defaults.items():
            if settings[name] is None:
                settings[name] = launch_kubernetes.get(name, default)
        return settings


class GradingConfig(_Strict):
    backend: Literal["auto", "docker", "process", "kubernetes"] = "auto"
    timeout_s: float = 6.0
    workers: int | None = None
    memory_mb: int = 1024
    runtime: str | None = Field(
        default=None, description="docker backend: the engine's runtime for the sandboxes, e.g. runsc (gVisor, "
                                  "registered in /etc/docker/daemon.json); null: the engine's default (runc)")
    kubernetes: GradingKubernetesConfig = GradingKubernetesConfig()

    @model_validator(mode="after")
    def _runtime_is_docker_only(self) -> GradingConfig:
        if self.runtime is not None and self.backend not in ("docker", "auto"):
            raise ValueError(f"grading.runtime ({self.runtime!r}) is a Docker runtime; backend is {self.backend!r}")
        return self


class AblationConfig(_Strict):
    base_data_size: str = Field(description="stage checkpoint the ablation arms continue from")
    rows: dict[str, int] = Field(description="rows per arm: easy, hard, correct, incorrect")

    @field_validator("base_data_size")
    @classmethod
    def _valid_base(cls, v: str) -> str:
        return validate_data_size_key(v)

    @field_validator("rows")
    @classmethod
    def _arms_known(cls, v: dict[str, int]) -> dict[str, int]:
        unknown = set(v) - set(ABLATION_ARMS)
        missing = set(ABLATION_ARMS) - set(v)
        if unknown or missing:
            raise ValueError(f"ablation.rows needs exactly the arms {ABLATION_ARMS}; unknown {sorted(unknown)}, "
                             f"missing {sorted(missing)}")
        for arm, n in v.items():
            if n < 1:
                raise ValueError(f"ablation.rows.{arm} must be >= 1, got {n}")
        return v


class TrackingConfig(_Strict):
    """Experiment trackers the SFT entrypoint reports to besides Dagster's metadata (its `report_to` parameter).
    Credentials and endpoints come only from the pods' environment (WANDB_API_KEY, MLFLOW_TRACKING_URI: a Secret in
    `launch.kubernetes.env_from_secrets`); local tracker files are kept under the run's output_dir/logs/."""

    report_to: list[Literal["none", "tensorboard", "wandb", "mlflow"]] = Field(default_factory=lambda: ["none"])

    @field_validator("report_to")
    @classmethod
    def _none_alone(cls, v: list[str]) -> list[str]:
        if not v or ("none" in v and len(v) > 1):
            raise ValueError(f"tracking.report_to: 'none' alone, or trackers without it; got {v}")
        return v


class AnalysisConfig(_Strict):
    bootstrap_samples: int = 1000
    seed: int = 0


class AutomationConfig(_Strict):
    """What the daemon does by itself (README "What happens by itself")."""

    release_check_interval_s: int = Field(default=86400, ge=30, description="how often the release sensor ticks")
    release_check_cron: str | None = Field(
        default=None, description="cron (UTC) of release discovery, e.g. '0 6 * * *' daily: a tick lists the source "
                                  "only once a cron time passed since its last listing; null: every tick")
    release_sensor_running: bool = Field(default=True, description="start the release sensor with the daemon")
    backfill_existing_releases: bool = Field(
        default=False, description="first tick: fetch the problems of every release found, not only the newest")
    conditions_running: bool = Field(
        default=True, description="start `valley_automation` (the evaluation and analysis assets' automation "
                                  "conditions: new checkpoints and new releases are scored, the report refreshed)")
    condition_interval_s: int = Field(default=30, ge=5, description="how often the automation conditions are evaluated")

    @field_validator("release_check_cron")
    @classmethod
    def _valid_cron(cls, v: str | None) -> str | None:
        from dagster._utils.schedules import is_valid_cron_string

        if v is not None and not is_valid_cron_string(v):
            raise ValueError(f"automation.release_check_cron: {v!r} is not a cron string (e.g. '0 6 * * *')")
        return v


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
