"""The sections of the study config that say how the work runs: the launcher (`launch`), the generation settings
of the evaluation, extra teachers, the grader, experiment trackers and what the daemon does by itself.
`valley_assets.config` puts them together (`StudyConfig`) and re-exports them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from valley_assets.config_study import _Strict
from valley_assets.partitions import validate_release_key


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
