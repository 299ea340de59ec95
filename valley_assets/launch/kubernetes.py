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

The Job (`build_job`):
- Indexed, `completions = parallelism = nodes`; for nodes > 1 a headless Service (`build_headless_service`) gives
  pod `<job>-0.<job>` a DNS name for the torch rendezvous; `NODE_RANK` = the completion index.
- `podFailurePolicy` (rules are matched in order, first match wins; `restartPolicy: Never` is required):
  rule 0 (`DISRUPTION_RULE`) matches a pod with the `DisruptionTarget` condition (scheduler preemption, node drain
  through the eviction API, taint-manager or PodGC deletion after node loss, kubelet node shutdown); rule 1 fails the
  Job at once on any non-zero exit code of the program (a code or data error would fail again). Rule 0's action
  depends on the node count:
  * one node: `Ignore`. The Job controller replaces the pod without using up `backoffLimit`, and the new pod resumes
    from the latest durable checkpoint. There is no peer that could be left behind.
  * several nodes: `FailJob`. Replacing one index alone cannot work: the surviving ranks are inside a collective with
    a dead peer and exit non-zero, which rule 1 would read as a code error, and a replacement rank cannot join a
    rendezvous that is not restarting. `backoffLimitPerIndex` retries indexes independently, so it does not help
    either. The Job fails fast instead (the controller terminates the other pods), and the launcher reads the verdict
    (`failure_is_disruption`: "matching FailJob rule at index 0" in the Failed condition, or a pod of the attempt
    carrying `DisruptionTarget`, for when a peer's exit code won the race) and submits the whole Job again as a new
    attempt (`<job>-r<N>`, up to `max_restarts`): every rank restarts together, rendezvous anew, and resumes from
    the latest durable checkpoint (`resume_from_checkpoint: auto`). A code error still fails the launch.
  `backoffLimit` bounds what no rule matches (e.g. a pod that failed before its container ran).
- GPU limits (`nvidia.com/gpu`), a toleration for the `nvidia.com/gpu` taint, a configurable nodeSelector/affinity
  for the H100 pool (GKE: `cloud.google.com/gke-accelerator: nvidia-h100-80gb`; EKS:
  `node.kubernetes.io/instance-type: p5.48xlarge`), `/dev/shm` as a memory emptyDir (NCCL and dataloader workers need
  more than the 64 MiB default), `HF_TOKEN` from the `HF_TOKEN` key of a Secret, every `env_from_secrets` Secret as
  env (envFrom: object-store credentials), the ServiceAccount (IRSA / Workload Identity), `ttlSecondsAfterFinished`, labels with the asset key,
  partition and run id (sanitised to label syntax; the raw values go in annotations).

The launcher (`KubernetesJobLauncher.run`) creates the Service and Job, follows logs, polls the Job until it is
`Complete` or `Failed`, restarts disrupted multi-node attempts, and deletes the Job (and its pods) when the Dagster
run is cancelled. All API calls go through one small object (`K8sApi`: batch + core clients); `api_factory` names a
function that returns one (default: the kube config), which is how tests drive the state handling with a recording
double, and which works wherever Dagster rebuilds the resource from its config.

Grading Jobs (valley_assets/grading/kubernetes_backend.py) are built by the same `build_job`: `JobSpec`'s
`completions` (independent indexes, no rendezvous), `pod_failure_rules`, `security_context` / `pod_security_context`,
`runtime_class_name`, `automount_service_account_token`, `enable_service_links`, `memory_volumes` (memory emptyDirs
with a size limit), `cpu_limit` and `stdin_once` make a pod fit for untrusted code; left at their defaults they
change nothing in training and generation Jobs.

Multi-node Jobs need `checkpoint_pvc` (a ReadWriteMany volume): sharded (FSDP/ZeRO) checkpoints are written by every
rank, so every node must stage them in the same place before rank 0 marks them complete and mirrors them
(`VALLEY_STAGING_DIR` points the entrypoint there).
"""

from __future__ import annotations

import hashlib
import importlib
import re
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import dagster as dg
from dagster._core.pipes.utils import PipesEnvContextInjector, open_pipes_session
from kubernetes import client as k8s
from pydantic import ConfigDict, Field, model_validator

from valley_assets.launch.base import (
    GENERATION,
    TRAINING,
    LaunchError,
    launch_kind,
    reported_metadata,
    validate_launch_args,
)
from valley_assets.launch.quantity import check_quantity, scale_quantity

CONTAINER_NAME = "main"
RENDEZVOUS_PORT = 29500
LABEL_PREFIX = "valley.dev"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
GKE_H100_NODE_SELECTOR = {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
EKS_H100_NODE_SELECTOR = {"node.kubernetes.io/instance-type": "p5.48xlarge"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
DISRUPTION_RULE = 0  # index of the DisruptionTarget rule in podFailurePolicy; the controller reports it by index
CHECKPOINT_MOUNT = "/checkpoints"
STAGING_SUBDIR = "staging"  # under the checkpoint volume: where every node stages sharded checkpoints
# The hub token Secret's key. It is the variable's own name, so the same Secret gives `HF_TOKEN` both to the Dagster
# run pods (the Helm chart's `envSecrets` is an envFrom: every key becomes a variable of that name) and to the Jobs.
HF_TOKEN_KEY = "HF_TOKEN"


# --- names and labels ---------------------------------------------------------------------------------------------
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_DNS_BAD = re.compile(r"[^a-z0-9-]+")


def label_value(raw: str) -> str:
    """`raw` as a valid label value: [A-Za-z0-9_.-], at most 63 chars, alphanumeric at both ends ('' allowed)."""
    value = _LABEL_VALUE_BAD.sub("_", raw)[:63]
    return value.strip("_.-")


def job_name(name: str, run_id: str) -> str:
    """A DNS-1123 Job name, short enough that pod hostnames (`<job>-<index>`) stay within 63 characters."""
    digest = hashlib.sha1(f"{name}/{run_id}".encode()).hexdigest()[:8]
    stem = _DNS_BAD.sub("-", name.lower()).strip("-")[:40].strip("-") or "run"
    return f"{stem}-{digest}"


# --- the manifest -------------------------------------------------------------------------------------------------
@dataclass
class JobSpec:
    """Everything a Job manifest depends on; `build_job` is a pure function of it."""

    name: str
    namespace: str
    image: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    gpus_per_node: int = 0
    nodes: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    affinity: dict[str, Any] | None = None
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    service_account: str | None = None
    hf_token_secret: str | None = None
    hf_token_secret_key: str = HF_TOKEN_KEY
    env_from_secrets: list[str] = field(default_factory=list)
    shm_size: str = "64Gi"
    cpu: str | None = None
    memory: str | None = None
    checkpoint_pvc: str | None = None
    checkpoint_mount_path: str = CHECKPOINT_MOUNT
    backoff_limit: int = 6
    ttl_seconds_after_finished: int = 86400
    active_deadline_seconds: int | None = None
    image_pull_policy: str = "IfNotPresent"
    # What a pod running untrusted code needs (grading Jobs, valley_assets/grading/kubernetes_backend.py); the
    # defaults leave training and generation Jobs as they were.
    completions: int | None = None  # None: one completion per node; else independent indexes (no rendezvous)
    pod_failure_rules: list[k8s.V1PodFailurePolicyRule] | None = None  # None: pod_failure_policy(nodes)
    security_context: k8s.V1SecurityContext | None = None  # the container's
    pod_security_context: k8s.V1PodSecurityContext | None = None
    runtime_class_name: str | None = None  # e.g. gvisor (GKE Sandbox), kata
    automount_service_account_token: bool | None = None  # None: the ServiceAccount's own setting
    enable_service_links: bool | None = None  # False: no env vars describing the namespace's Services
    memory_volumes: dict[str, str] = field(default_factory=dict)  # mount path -> sizeLimit of a Memory emptyDir
    cpu_limit: str | None = None
    stdin_once: bool = False  # the container reads its input from one `attach` (stdin: true, stdinOnce: true)
    termination_grace_period_seconds: int | None = None

    @property
    def headless_service_name(self) -> str:
        return self.name


def build_job(spec: JobSpec) -> k8s.V1Job:
    """The `batch/v1` Job for one launch (see the module docstring for what each part is for)."""
    if spec.nodes < 1:
        raise LaunchError(f"{spec.name}: nodes must be >= 1, got {spec.nodes}")
    if spec.completions is not None and (spec.completions < 1 or spec.nodes > 1):
        raise LaunchError(f"{spec.name}: completions={spec.completions} is for independent one-node indexes "
                          f"(>= 1, nodes=1), got nodes={spec.nodes}")
    labels = {"app.kubernetes.io/name": "valley", "app.kubernetes.io/managed-by": "valley-launcher", **spec.labels}
    env = [k8s.V1EnvVar(name=key, value=value) for key, value in sorted(spec.env.items())]
    env.append(k8s.V1EnvVar(
        name="NODE_RANK",
        value_from=k8s.V1EnvVarSource(
            field_ref=k8s.V1ObjectFieldSelector(field_path=f"metadata.annotations['{INDEX_ANNOTATION}']")
        ),
    ))
    if spec.nodes > 1:
        env += [
            k8s.V1EnvVar(name="MASTER_ADDR", value=f"{spec.name}-0.{spec.headless_service_name}"),
            k8s.V1EnvVar(name="MASTER_PORT", value=str(RENDEZVOUS_PORT)),
        ]
    if spec.hf_token_secret:
        env.append(k8s.V1EnvVar(
            name="HF_TOKEN",
            value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(
                name=spec.hf_token_secret, key=spec.hf_token_secret_key, optional=False
            )),
        ))

    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if spec.gpus_per_node:
        limits["nvidia.com/gpu"] = str(spec.gpus_per_node)
    if spec.cpu:
        requests["cpu"] = spec.cpu
    if spec.memory:
        requests["memory"] = spec.memory
        limits["memory"] = spec.memory
    if spec.cpu_limit:
        limits["cpu"] = spec.cpu_limit

    volumes = [k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=spec.shm_size))]
    mounts = [k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm")]
    for i, (path, size) in enumerate(sorted(spec.memory_volumes.items())):
        volumes.append(k8s.V1Volume(name=f"mem-{i}",
                                    empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=size)))
        mounts.append(k8s.V1VolumeMount(name=f"mem-{i}", mount_path=path))
    if spec.checkpoint_pvc:
        volumes.append(k8s.V1Volume(
            name="checkpoints",
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=spec.checkpoint_pvc),
        ))
        mounts.append(k8s.V1VolumeMount(name="checkpoints", mount_path=spec.checkpoint_mount_path))

    container = k8s.V1Container(
        name=CONTAINER_NAME,
        image=spec.image,
        image_pull_policy=spec.image_pull_policy,
        command=list(spec.command),
        env=env,
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=secret, optional=False))
                  for secret in spec.env_from_secrets] or None,
        resources=k8s.V1ResourceRequirements(limits=limits or None, requests=requests or None),
        volume_mounts=mounts,
        ports=[k8s.V1ContainerPort(container_port=RENDEZVOUS_PORT, name="rendezvous")] if spec.nodes > 1 else None,
        security_context=spec.security_context,
        stdin=True if spec.stdin_once else None,
        stdin_once=True if spec.stdin_once else None,
    )
    tolerations = list(spec.tolerations) or ([GPU_TOLERATION] if spec.gpus_per_node else [])
    pod_spec = k8s.V1PodSpec(
        restart_policy="Never",  # required by podFailurePolicy; the Job controller does the retrying
        containers=[container],
        volumes=volumes,
        service_account_name=spec.service_account,
        node_selector=dict(spec.node_selector) or None,
        affinity=spec.affinity,
        tolerations=[k8s.V1Toleration(**t) for t in tolerations] or None,
        subdomain=spec.headless_service_name if spec.nodes > 1 else None,
        security_context=spec.pod_security_context,
        runtime_class_name=spec.runtime_class_name,
        automount_service_account_token=spec.automount_service_account_token,
        enable_service_links=spec.enable_service_links,
        termination_grace_period_seconds=spec.termination_grace_period_seconds,
    )
    failure_policy = (pod_failure_policy(spec.nodes) if spec.pod_failure_rules is None
                      else k8s.V1PodFailurePolicy(rules=list(spec.pod_failure_rules)))
    completions = spec.nodes if spec.completions is None else spec.completions
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(
            name=spec.name, namespace=spec.namespace, labels=labels, annotations=dict(spec.annotations) or None
        ),
        spec=k8s.V1JobSpec(
            completion_mode="Indexed",
            completions=completions,
            parallelism=completions,
            backoff_limit=spec.backoff_limit,
            pod_failure_policy=failure_policy,
            ttl_seconds_after_finished=spec.ttl_seconds_after_finished,
            active_deadline_seconds=spec.active_deadline_seconds,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels, annotations=dict(spec.annotations) or None),
                spec=pod_spec,
            ),
        ),
    )


def pod_failure_policy(nodes: int) -> k8s.V1PodFailurePolicy:
    """Disruptions retried (in place for one node, by the launcher as a whole-Job restart for several), exit codes
    fatal; see the module docstring for why multi-node Jobs cannot retry one index alone."""
    rules = [
        k8s.V1PodFailurePolicyRule(  # DISRUPTION_RULE
            action="Ignore" if nodes == 1 else "FailJob",
            on_pod_conditions=[k8s.V1PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget", status="True")],
        ),
        # After the disruption rule: a preempted container also exits non-zero (SIGTERM: 143), and must not be read
        # as a code error.
        k8s.V1PodFailurePolicyRule(
            action="FailJob",
            on_exit_codes=k8s.V1PodFailurePolicyOnExitCodesRequirement(
                container_name=CONTAINER_NAME, operator="NotIn", values=[0]
            ),
        ),
    ]
    return k8s.V1PodFailurePolicy(rules=rules)


def build_headless_service(spec: JobSpec) -> k8s.V1Service:
    """Headless Service selecting the Job's pods, so `<job>-<index>.<job>` resolves for the rendezvous."""
    return k8s.V1Service(
        api_version="v1",
        kind="Service",
        metadata=k8s.V1ObjectMeta(name=spec.headless_service_name, namespace=spec.namespace, labels=spec.labels or None),
        spec=k8s.V1ServiceSpec(
            cluster_ip="None",
            selector={"batch.kubernetes.io/job-name": spec.name},
            publish_not_ready_addresses=True,  # rendezvous happens before any readiness
            ports=[k8s.V1ServicePort(name="rendezvous", port=RENDEZVOUS_PORT, target_port=RENDEZVOUS_PORT)],
        ),
    )


def to_manifest(obj) -> dict:
    """A kubernetes client model as the camelCase dict `kubectl apply` takes (None fields dropped)."""
    return k8s.ApiClient().sanitize_for_serialization(obj)


def launch_command(module: str, gpus_per_node: int, nodes: int, accelerate_config: str | None,
                   distributed: bool = True) -> list[str]:
    """The container command: plain python, or (distributed kinds only) accelerate over every GPU of every node.

    A single-process kind (generation: vLLM drives its tensor-parallel GPUs from one process) is always plain python.
    For several nodes each pod runs `gpus_per_node` processes; accelerate hands them to torch's launcher with
    `--nnodes num_machines --nproc_per_node num_processes/num_machines --node_rank machine_rank` and a static
    rendezvous at rank 0's pod. `$(NODE_RANK)`, `$(MASTER_ADDR)`, `$(MASTER_PORT)` are expanded by the kubelet from
    the container's env (NODE_RANK = the Job's completion index).
    """
    world = gpus_per_node * nodes
    if not distributed:
        if nodes != 1:
            raise LaunchError(f"`python -m {module}` is a single-process program: it cannot span {nodes} nodes")
        return ["python", "-m", module]
    if accelerate_config is None or world <= 1:
        return ["python", "-m", module]
    command = [
        "accelerate", "launch", "--config_file", accelerate_config,
        "--num_machines", str(nodes), "--num_processes", str(world), "--machine_rank", "$(NODE_RANK)",
    ]
    if nodes > 1:
        command += ["--main_process_ip", "$(MASTER_ADDR)", "--main_process_port", "$(MASTER_PORT)", "--rdzv_backend",
                    "static"]
    return command + ["-m", module]


# --- what each kind of launch asks for ----------------------------------------------------------------------------
class PodResources(dg.Config):
    """What the pods of one kind of launch request (launcher fields `training` and `generation`). A field left unset
    keeps the kind's default (`KIND_RESOURCES`), so a profile changes only what it names.

    A pod with GPUs requests `cpu_per_gpu` and `memory_per_gpu` times its GPUs (memory is also its limit); a pod
    without GPUs (CPU work) requests `cpu` and `memory`. `/dev/shm` is a memory-backed volume, so it counts against
    the pod's memory: keep `shm_size` below it.
    """

    image: str | None = Field(default=None, description="image of this kind's Jobs; unset: the launcher's `image`")
    cpu_per_gpu: str | None = Field(default=None, description="CPU request per GPU of the pod, e.g. '8'")
    memory_per_gpu: str | None = Field(default=None, description="memory request (and limit) per GPU, e.g. '100Gi'")
    cpu: str | None = Field(default=None, description="CPU request of a pod with no GPU")
    memory: str | None = Field(default=None, description="memory request (and limit) of a pod with no GPU")
    shm_size: str | None = Field(default=None, description="size of /dev/shm (memory-backed)")

    model_config = ConfigDict(extra="forbid")  # a misspelt key must not silently keep the default

    @model_validator(mode="after")
    def _quantities(self) -> PodResources:
        for name in ("cpu_per_gpu", "memory_per_gpu", "cpu", "memory", "shm_size"):
            value = getattr(self, name)
            if value is not None:
                check_quantity(value, name)
        return self


# An H100 node (a3-highgpu-8g: 208 vCPU / 1872 GiB; p5.48xlarge: 192 vCPU / 2048 GiB) split per GPU, with headroom
# for the system. Training (FSDP, dataloader workers, CPU-RAM-efficient loading of the full model on rank 0) takes
# the most; one vLLM engine per GPU needs the weights once in host memory plus its swap space.
KIND_RESOURCES: dict[str, dict[str, str]] = {
    TRAINING: {"cpu_per_gpu": "8", "memory_per_gpu": "100Gi", "cpu": "4", "memory": "16Gi", "shm_size": "64Gi"},
    GENERATION: {"cpu_per_gpu": "8", "memory_per_gpu": "64Gi", "cpu": "4", "memory": "16Gi", "shm_size": "16Gi"},
}


@dataclass(frozen=True)
class PodSizing:
    cpu: str
    memory: str
    shm_size: str


def pod_sizing(resources: dict[str, str | None], gpus_per_pod: int, kind: str) -> PodSizing:
    """The requests of one pod of a `kind` launch with `gpus_per_pod` GPUs, from its resolved resources."""
    where = f"launcher.{kind}"
    for name, value in resources.items():
        if name != "image" and value is not None:
            check_quantity(value, f"{where}.{name}")
    if gpus_per_pod:
        return PodSizing(cpu=scale_quantity(resources["cpu_per_gpu"], gpus_per_pod, f"{where}.cpu_per_gpu"),
                         memory=scale_quantity(resources["memory_per_gpu"], gpus_per_pod, f"{where}.memory_per_gpu"),
                         shm_size=resources["shm_size"])
    return PodSizing(cpu=resources["cpu"], memory=resources["memory"], shm_size=resources["shm_size"])


# --- the API surface the launcher uses (a double replaces it in tests) --------------------------------------------
@dataclass
class K8sApi:
    batch: Any  # kubernetes.client.BatchV1Api
    core: Any  # kubernetes.client.CoreV1Api

    @classmethod
    def from_config(cls, kubeconfig_file: str | None, in_cluster: bool) -> K8sApi:
        """Clients of their own (not the kubernetes package's global default), so launchers with different settings
        in one process never share a cluster: in-cluster credentials, or the kube config file (None: $KUBECONFIG,
        else ~/.kube/config), e.g. one pointing at a local API server."""
        from kubernetes import config

        if in_cluster:
            configuration = k8s.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            api_client = k8s.ApiClient(configuration)
        else:
            api_client = config.new_client_from_config(config_file=kubeconfig_file)
        return cls(batch=k8s.BatchV1Api(api_client), core=k8s.CoreV1Api(api_client))


def load_api_factory(path: str):
    """`module:function` -> the function (called with no arguments, it returns a `K8sApi`)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise LaunchError(f"api_factory {path!r} must look like 'package.module:function'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise LaunchError(f"api_factory {path!r} cannot be loaded: {exc}") from exc
    if not callable(factory):
        raise LaunchError(f"api_factory {path!r} is not callable")
    return factory


# --- reading the cluster's verdict --------------------------------------------------------------------------------
@dataclass
class Attempt:
    """How one submitted Job ended."""

    job_name: str
    succeeded: bool
    detail: str = ""  # the Failed condition's reason and message
    disrupted: bool = False  # failed because a node was preempted/drained/lost, not because of the program
    last_rank0: str = ""  # the last rank-0 pod's exit, for the error message


def _true_condition(obj, kind: str):
    for condition in (obj.status.conditions or []) if obj.status else []:
        if condition.type == kind and condition.status == "True":
            return condition
    return None


def job_outcome(job) -> tuple[str, str]:
    """('running'|'succeeded'|'failed', detail) from a Job's status conditions.

    `Failed` (not `FailureTarget`) is the terminal one: the controller sets it once every pod of the Job has
    terminated, so a restart never shares GPUs with a pod that is still shutting down.
    """
    complete = _true_condition(job, "Complete")
    if complete is not None:
        return "succeeded", complete.message or ""
    failed = _true_condition(job, "Failed")
    if failed is not None:
        return "failed", f"{failed.reason}: {failed.message or ''}".strip()
    return "running", ""


_DISRUPTION_VERDICT = re.compile(rf"\bmatching FailJob rule at index {DISRUPTION_RULE}\b")


def failure_is_disruption(job, pods: list) -> bool:
    """Did this multi-node Job fail because a node went away? (Only meaningful for `nodes > 1`, where the disruption
    rule is `FailJob`; a one-node Job retries disruptions itself and never fails from one.)

    The controller names the matching rule by index: "Pod ns/p has condition DisruptionTarget matching FailJob rule at
    index 0". A peer's non-zero exit can be processed first (it crashes within seconds of losing its partner, the
    preempted pod takes its grace period to terminate), so a pod of the attempt carrying `DisruptionTarget` also
    counts. Pods the Job controller itself terminates after `FailJob` get no such condition.
    """
    failed = _true_condition(job, "Failed")
    if failed is not None and failed.reason == "PodFailurePolicy" and _DISRUPTION_VERDICT.search(failed.message or ""):
        return True
    return any(_true_condition(pod, "DisruptionTarget") is not None for pod in pods)


def pod_exit_summary(pod) -> str:
    statuses = (pod.status.container_statuses or []) if pod.status else []
    for status in statuses:
        terminated = status.state.terminated if status.state else None
        if terminated is not None:
            return f"pod {pod.metadata.name}: exit code {terminated.exit_code} ({terminated.reason or 'terminated'})"
    return f"pod {pod.metadata.name}: phase {pod.status.phase if pod.status else 'unknown'}"


class JobWatcher:
    """Create a Job (+ Service), follow its index-0 pods' logs into pipes, wait for the outcome, clean up."""

    def __init__(self, api: K8sApi, context, message_reader, poll_interval_s: float, timeout_s: float | None):
        self.api = api
        self.context = context
        self.reader = message_reader
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.followed: list[str] = []
        self._threads: list[threading.Thread] = []
        self._started = time.monotonic()  # the timeout covers every attempt of a launch

    def _follow(self, pod_name: str, namespace: str) -> None:
        def consume():
            try:
                self.reader.consume_pod_logs(self.context, self.api.core, pod_name, namespace)
            except Exception as exc:  # a lost log stream must not hide the Job's own outcome
                self.context.log.warning(f"stopped following logs of {pod_name}: {exc}")

        thread = threading.Thread(target=consume, name=f"logs-{pod_name}", daemon=True)
        thread.start()
        self.followed.append(pod_name)
        self._threads.append(thread)
        self.context.log.info(f"following logs of pod {pod_name}")

    def _pods(self, name: str, namespace: str, rank0_only: bool) -> list:
        selector = f"batch.kubernetes.io/job-name={name}"
        if rank0_only:
            selector += f",{INDEX_ANNOTATION}=0"  # also a label on the Job's pods since Kubernetes 1.28
        pods = self.api.core.list_namespaced_pod(namespace, label_selector=selector)
        return sorted(pods.items, key=lambda p: p.metadata.creation_timestamp or 0)

    def run(self, job: k8s.V1Job, service: k8s.V1Service | None) -> Attempt:
        """Submit `job` and wait for its end. Cancellation, timeout or an API error delete it before re-raising."""
        name, namespace = job.metadata.name, job.metadata.namespace
        if service is not None:
            self.api.core.create_namespaced_service(namespace, service)
        self.api.batch.create_namespaced_job(namespace, job)
        self.context.log.info(f"created Job {namespace}/{name}")
        finished = False  # a finished Job is kept for inspection (ttlSecondsAfterFinished removes it)
        try:
            while True:
                status = self.api.batch.read_namespaced_job_status(name, namespace)
                for pod in self._pods(name, namespace, rank0_only=True):
                    phase = pod.status.phase if pod.status else None
                    if pod.metadata.name not in self.followed and phase in ("Running", "Succeeded", "Failed"):
                        if self.followed:
                            self.context.log.warning(f"Job {name}: now following rank-0 pod {pod.metadata.name} "
                                                     "(a replacement after a retry)")
                        self._follow(pod.metadata.name, namespace)
                outcome, detail = job_outcome(status)
                if outcome != "running":
                    finished = True
                    self._join_log_threads()
                    if outcome == "succeeded":
                        return Attempt(name, succeeded=True, detail=detail)
                    rank0 = self._pods(name, namespace, rank0_only=True)
                    multi_node = (job.spec.completions or 1) > 1
                    return Attempt(
                        name, succeeded=False, detail=detail,
                        disrupted=multi_node and failure_is_disruption(status, self._pods(name, namespace, False)),
                        last_rank0=pod_exit_summary(rank0[-1]) if rank0 else "no pod was started",
                    )
                if self.timeout_s is not None and time.monotonic() - self._started > self.timeout_s:
                    raise LaunchError(f"Job {namespace}/{name} still running after {self.timeout_s:.0f}s; deleting it")
                time.sleep(self.poll_interval_s)
        finally:
            # Cancelled run (DagsterExecutionInterruptedError), timeout or API error: leave nothing running.
            if not finished:
                self.delete_job(name, namespace)
            if service is not None:
                self.api.core.delete_namespaced_service(name, namespace)

    def _join_log_threads(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def delete_job(self, name: str, namespace: str) -> None:
        self.context.log.warning(f"deleting Job {namespace}/{name} and its pods")
        self.api.batch.delete_namespaced_job(
            name, namespace, body=k8s.V1DeleteOptions(propagation_policy="Background")
        )


def attempt_spec(spec: JobSpec, attempt: int) -> JobSpec:
    """The spec of restart `attempt` (0 = the first submission): its own Job and Service name, so the failed attempt
    stays inspectable until its TTL, and new pods get fresh hostnames for the rendezvous."""
    if attempt == 0:
        return spec
    return replace(spec, name=f"{spec.name}-r{attempt}", labels={**spec.labels, f"{LABEL_PREFIX}/attempt": str(attempt)})


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
