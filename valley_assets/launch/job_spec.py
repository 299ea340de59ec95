"""The `batch/v1` objects of a launch: its Job (`build_job`, a pure function of `JobSpec`), the headless
Service of a multi-node Job (`build_headless_service`) and the container command (`launch_command`). The launcher
(`launch.kubernetes`) and the grading backend (`grading.kubernetes_backend`) both build their Jobs here.

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
import re
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from valley_assets.launch.base import LaunchError

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
