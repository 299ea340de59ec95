"""Run an entrypoint as a Kubernetes `batch/v1` Job, talking to Dagster through dagster-pipes.

dagster-k8s's `PipesK8sClient` starts a bare Pod: nothing restarts it when a spot/preemptible H100 node goes away, and
it cannot span nodes. Training wants a Job, so this module builds one and reuses the dagster-pipes pieces around it:

- context injection: `PipesEnvContextInjector` (the context rides in the `DAGSTER_PIPES_CONTEXT` env var);
- messages: `PipesK8sPodLogsMessageReader`; the program writes pipes messages to stderr and the launcher follows the
  logs of the Job's index-0 pod (rank 0 is the only writer), following each replacement pod after a retry.

Every kind of launch (`launch.base.LAUNCH_KINDS`) becomes a Job in one place, `KubernetesJobLauncher.job_spec` ->
`JobSpec` -> `build_job`. The kind decides the process model (`launch_command`: `accelerate launch` over every GPU of
every node for training; plain `python -m` for generation, whose one process drives its tensor-parallel GPUs and never
spans nodes) and, through the launcher's `training` / `generation` settings (`PodResources`), the image and the pods'
requests: per-GPU CPU and memory times the pod's GPUs, or fixed amounts for a pod without GPUs.

The launcher (`KubernetesJobLauncher.run`) creates the Service and Job, follows logs, polls the Job until it is
`Complete` or `Failed`, restarts disrupted multi-node attempts, and deletes the Job (and its pods) when the Dagster
run is cancelled. All API calls go through one small object (`K8sApi`: batch + core clients); `api_factory` names a
function that returns one (default: the kube config), which is how tests drive the state handling with a recording
double, and which works wherever Dagster rebuilds the resource from its config.

The parts live by what they do: `launch.job_spec` builds the `batch/v1` objects (its docstring says what each part of
the Job is for, the `podFailurePolicy` included), `launch.pod_sizing` sizes the pods of each kind, `launch.k8s_api`
is the API access and `launch.job_watch` follows one submitted Job to its outcome; this module is the Dagster
resource that puts them together.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.pipes.utils import PipesEnvContextInjector, open_pipes_session
from pydantic import Field

from valley_assets.launch.base import TRAINING, LaunchError, launch_kind, reported_metadata, validate_launch_args
from valley_assets.launch.job_spec import (
    CHECKPOINT_MOUNT,
    GKE_H100_NODE_SELECTOR,
    GPU_TOLERATION,
    HF_TOKEN_KEY,
    LABEL_PREFIX,
    STAGING_SUBDIR,
    JobSpec,
    build_headless_service,
    build_job,
    job_name,
    label_value,
    launch_command,
)
from valley_assets.launch.job_watch import JobWatcher, attempt_spec
from valley_assets.launch.k8s_api import K8sApi, load_api_factory
from valley_assets.launch.pod_sizing import KIND_RESOURCES, PodResources, pod_sizing


# --- the resource -------------------------------------------------------------------------------------------------
class KubernetesJobLauncher(dg.ConfigurableResource):
    """Launch entrypoints as Kubernetes Jobs on a GPU node pool; see the module docstring.

    Every kind of launch (`training`, `generation`) goes through `job_spec` -> `build_job`; the kind decides the
    process model (accelerate for training; one process for generation) and, through `training` / `generation`,
    the image and the pods' sizing.
    """

    namespace: str = "valley"
    image: str = Field(default="ghcr.io/valley-study/valley-trainer:latest",
                       description="trainer image (docker/trainer/Dockerfile), with the project installed")
    gpus_per_node: int = Field(default=8, ge=1, description="GPUs of one node; gpus > this spreads over nodes")
    node_selector: dict[str, str] = Field(default_factory=lambda: dict(GKE_H100_NODE_SELECTOR))
    affinity: dict[str, Any] | None = Field(default=None, description="raw pod affinity (camelCase or snake_case)")
    tolerations: list[dict[str, Any]] = Field(default_factory=lambda: [dict(GPU_TOLERATION)])
    service_account: str | None = Field(
        default="valley-runner", description="the pods' ServiceAccount: annotate it for IRSA (EKS) or Workload "
                                             "Identity (GKE) to give the Jobs object-store access without keys")
    hf_token_secret: str | None = Field(
        default="hf-token", description=f"Secret holding the hub token under key '{HF_TOKEN_KEY}' (given to the "
                                        "pods as HF_TOKEN)")
    env_from_secrets: list[str] = Field(
        default_factory=list, description="Secrets whose every key becomes an env var of the pods (envFrom), e.g. "
                                          "valley-object-store with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / "
                                          "AWS_ENDPOINT_URL_S3")
    checkpoint_pvc: str | None = Field(
        default=None, description="PVC mounted at /checkpoints: local-disk output_dir, and the shared staging folder "
                                  "of sharded checkpoints (required, ReadWriteMany, for multi-node Jobs)")
    accelerate_config: str | None = Field(
        default="valley_assets/training/accelerate/fsdp2.yaml",
        description="accelerate config for multi-GPU training launches (path inside the image); None runs one "
                    "process per pod",
    )
    shm_size: str | None = Field(default=None, description="/dev/shm of every kind that does not set its own")
    training: PodResources = Field(default_factory=PodResources, description="image and sizing of training Jobs")
    generation: PodResources = Field(default_factory=PodResources,
                                     description="image and sizing of generation Jobs (vLLM; needs vllm installed)")
    env: dict[str, str] = Field(default_factory=dict)
    backoff_limit: int = 6
    max_restarts: int = Field(default=10, ge=0, description="whole-Job restarts of a multi-node launch after "
                                                             "disruptions (preemption, node loss)")
    ttl_seconds_after_finished: int = 86400
    poll_interval_s: float = 10.0
    timeout_s: float | None = Field(default=None, description="delete the Job after this long; None waits forever")
    kubeconfig_file: str | None = Field(default=None, description="kube config to load when in_cluster is false "
                                                                  "(None: $KUBECONFIG or ~/.kube/config)")
    in_cluster: bool = Field(default=True, description="use the pod's service account (a run pod in the cluster)")
    api_factory: str | None = Field(
        default=None, description="'module:function' returning a K8sApi, instead of loading a kube config (tests)")

    def api(self) -> K8sApi:
        if self.api_factory:
            return load_api_factory(self.api_factory)()
        return K8sApi.from_config(self.kubeconfig_file, self.in_cluster)

    def resources_for(self, kind: str) -> dict[str, str | None]:
        """The kind's defaults, then the launcher-wide shm_size, then what the kind's own settings name."""
        configured = getattr(self, kind).model_dump(exclude_none=True)
        shared = {"shm_size": self.shm_size} if self.shm_size else {}
        return {"image": self.image, **KIND_RESOURCES[kind], **shared, **configured}

    def nodes_for(self, gpus: int, kind: str = TRAINING) -> tuple[int, int]:
        """(nodes, gpus per node) for a request of `gpus`; a multi-node request must fill whole nodes, and only a
        distributed kind may span nodes."""
        if gpus <= self.gpus_per_node:
            return 1, gpus
        if not launch_kind(kind).distributed:
            raise LaunchError(f"a {kind} launch is one process and cannot span nodes: gpus={gpus} > "
                              f"gpus_per_node={self.gpus_per_node}")
        if gpus % self.gpus_per_node:
            raise LaunchError(f"gpus={gpus} spans nodes but is not a multiple of gpus_per_node={self.gpus_per_node}")
        return gpus // self.gpus_per_node, self.gpus_per_node

    def job_spec(self, context, *, module: str, gpus: int, name: str, env: dict[str, str],
                 kind: str = TRAINING) -> JobSpec:
        """The one place a launch becomes a Job spec, whatever its kind."""
        launch = launch_kind(kind)
        nodes, per_node = self.nodes_for(gpus, kind)
        if nodes > 1 and not self.checkpoint_pvc:
            raise LaunchError(
                f"{name}: gpus={gpus} needs {nodes} nodes, and multi-node training needs checkpoint_pvc (a "
                "ReadWriteMany volume): every rank writes its shard of a checkpoint, so all nodes must stage it in "
                "one place")
        resources = self.resources_for(kind)
        sizing = pod_sizing(resources, per_node, kind)
        run_id = context.run.run_id if hasattr(context, "run") else context.run_id
        asset_key = context.asset_key.to_user_string() if getattr(context, "has_assets_def", False) else ""
        partition = context.partition_key if getattr(context, "has_partition_key", False) else ""
        staging = {"VALLEY_STAGING_DIR": f"{CHECKPOINT_MOUNT}/{STAGING_SUBDIR}"} if self.checkpoint_pvc else {}
        return JobSpec(
            name=job_name(name, run_id),
            namespace=self.namespace,
            image=resources["image"],
            command=launch_command(module, per_node, nodes, self.accelerate_config, distributed=launch.distributed),
            env={**staging, **self.env, **env},
            gpus_per_node=per_node,
            nodes=nodes,
            labels={
                f"{LABEL_PREFIX}/asset-key": label_value(asset_key),
                f"{LABEL_PREFIX}/partition": label_value(partition),
                "dagster/run-id": label_value(run_id),
                f"{LABEL_PREFIX}/launch": label_value(name),
                f"{LABEL_PREFIX}/kind": kind,
            },
            annotations={f"{LABEL_PREFIX}/asset-key": asset_key, f"{LABEL_PREFIX}/partition": partition,
                         "dagster/run-id": run_id},
            node_selector=self.node_selector if per_node else {},
            affinity=self.affinity,
            tolerations=self.tolerations if per_node else [],
            service_account=self.service_account,
            hf_token_secret=self.hf_token_secret,
            env_from_secrets=list(self.env_from_secrets),
            shm_size=sizing.shm_size,
            cpu=sizing.cpu,
            memory=sizing.memory,
            checkpoint_pvc=self.checkpoint_pvc,
            backoff_limit=self.backoff_limit,
            ttl_seconds_after_finished=self.ttl_seconds_after_finished,
        )

    def run(self, context, *, module: str, params: dict, gpus: int = 0, name: str, kind: str = TRAINING) -> dict:
        validate_launch_args(module, params, gpus, name, kind)
        from dagster_k8s.pipes import PipesK8sPodLogsMessageReader

        api = self.api()
        reader = PipesK8sPodLogsMessageReader()
        with open_pipes_session(
            context=context, context_injector=PipesEnvContextInjector(), message_reader=reader, extras=params
        ) as session:
            base = self.job_spec(context, module=module, gpus=gpus, name=name, env=session.get_bootstrap_env_vars(),
                                 kind=kind)
            watcher = JobWatcher(api, context, reader, self.poll_interval_s, self.timeout_s)
            for attempt in range(self.max_restarts + 1):
                spec = attempt_spec(base, attempt)
                result = watcher.run(build_job(spec), build_headless_service(spec) if spec.nodes > 1 else None)
                if result.succeeded:
                    break
                where = f"Job {spec.namespace}/{result.job_name} failed ({result.detail}); last rank-0 {result.last_rank0}"
                if not result.disrupted:
                    raise LaunchError(where)
                if attempt == self.max_restarts:
                    raise LaunchError(f"{where}; disrupted {attempt + 1} times, max_restarts={self.max_restarts} spent")
                context.log.warning(f"{where}: a node was disrupted; restarting all {spec.nodes} nodes as attempt "
                                    f"{attempt + 1}, resuming from the latest checkpoint")
        return reported_metadata(session, name)
