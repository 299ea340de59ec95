"""The Kubernetes Job launcher: manifests validate for 1.30 and 1.33, and the state handling against a recording
double of the batch/core APIs (success, code error, preemption then retry, cancellation)."""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace as NS

import dagster as dg
import kubernetes_validate
import pytest
import yaml
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster_pipes import _make_message, _normalize_param_metadata

from valley_assets.launch.base import LaunchError
from valley_assets.launch.kubernetes import (
    EKS_H100_NODE_SELECTOR,
    GKE_H100_NODE_SELECTOR,
    JobSpec,
    K8sApi,
    KubernetesJobLauncher,
    build_headless_service,
    build_job,
    job_name,
    label_value,
    launch_command,
    to_manifest,
)

REPO = Path(__file__).resolve().parents[2]
K8S_VERSIONS = ("1.30.0", "1.33.0")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def validate(manifest: dict) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)


# --- manifests ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("nodes, selector", [(1, GKE_H100_NODE_SELECTOR), (2, EKS_H100_NODE_SELECTOR)])
def test_generated_job_and_service_validate_strictly(nodes, selector):
    spec = JobSpec(
        name=job_name("sft qwen2.5-7b-instruct/10k", "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"), namespace="valley",
        image="ghcr.io/valley-study/valley-trainer:latest",
        command=launch_command("valley_assets.training.sft", 8, nodes, "valley_assets/training/accelerate/fsdp2.yaml"),
        env={"DAGSTER_PIPES_CONTEXT": "abc"}, gpus_per_node=8, nodes=nodes, node_selector=selector,
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        service_account="valley-runner", hf_token_secret="hf-token", cpu="64", memory="800Gi",
        checkpoint_pvc="valley-checkpoints", labels={"valley.dev/partition": label_value("10k|qwen2.5-7b-instruct")},
    )
    job = to_manifest(build_job(spec))
    validate(job)
    validate(to_manifest(build_headless_service(spec)))
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == job["spec"]["parallelism"] == nodes
    assert pod["restartPolicy"] == "Never" and pod["nodeSelector"] == selector
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}} in pod["volumes"]
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["operator"] == "NotIn"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf-token"
    assert len(job["metadata"]["name"]) <= 52
    if nodes > 1:
        assert pod["subdomain"] == job["metadata"]["name"] and env["MASTER_ADDR"]["value"].endswith(f"-0.{pod['subdomain']}")


def test_strict_validation_rejects_unknown_fields():
    job = to_manifest(build_job(JobSpec(name="x", namespace="n", image="i", command=["python"])))
    job["spec"]["template"]["spec"]["containers"][0]["gpus"] = 8
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)


@pytest.mark.parametrize("raw", ["checkpoint/qwen", "10k|qwen2.5-7b-instruct", "-a-", "x" * 100, "_", "ünïcode key"])
def test_label_values_are_sanitised(raw):
    assert LABEL_VALUE_RE.match(label_value(raw)) and len(label_value(raw)) <= 63


def test_k8s_folder_manifests_validate_strictly():
    manifests = [p for p in (REPO / "k8s").rglob("*.yaml")
                 # Helm values, the kustomization and cloud node-pool configs (gcloud, eksctl) are not K8s objects
                 if "values" not in p.name and p.name != "kustomization.yaml"
                 and not {"helm", "node-pools"} & set(p.relative_to(REPO / "k8s").parts)]
    assert manifests, "k8s/ has no manifests"
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                validate(doc)


# --- the state handling against a recording double ------------------------------------------------------------------
def pipes_lines(metadata: dict) -> list[str]:
    messages = [
        _make_message("opened", {}),
        _make_message("log", {"message": "training", "level": "INFO"}),
        _make_message("report_asset_materialization", {
            "asset_key": "checkpoint", "data_version": None,
            "metadata": _normalize_param_metadata(metadata, "report_asset_materialization", "metadata")}),
        _make_message("closed", {}),
    ]
    return [json.dumps(m) for m in messages]


@dataclass
class Tick:
    """What the API shows at one poll: rank-0 pods as (name, phase, exit code), and the Job's terminal condition."""

    pods: list[tuple[str, str, int | None]] = field(default_factory=list)
    condition: tuple[str, str, str] | None = None  # (type, reason, message)


class RecordingApi:
    def __init__(self, ticks: list[Tick], logs: dict[str, list[str]], interrupt_at: int | None = None):
        self.ticks, self.logs, self.interrupt_at = ticks, logs, interrupt_at
        self.calls: list[tuple] = []
        self.poll = -1
        self.batch, self.core = self, self

    def _tick(self) -> Tick:
        return self.ticks[min(self.poll, len(self.ticks) - 1)]

    # batch/v1
    def create_namespaced_job(self, namespace, body):
        self.calls.append(("create_job", body.metadata.name))

    def read_namespaced_job_status(self, name, namespace):
        self.calls.append(("read_job", name))
        if self.interrupt_at is not None and self.poll >= self.interrupt_at:
            raise DagsterExecutionInterruptedError()
        cond = self._tick().condition
        conditions = [NS(type=cond[0], status="True", reason=cond[1], message=cond[2])] if cond else None
        return NS(status=NS(conditions=conditions))

    def delete_namespaced_job(self, name, namespace, body=None):
        self.calls.append(("delete_job", name, body.propagation_policy))

    # core/v1
    def create_namespaced_service(self, namespace, body):
        self.calls.append(("create_service", body.metadata.name))

    def delete_namespaced_service(self, name, namespace):
        self.calls.append(("delete_service", name))

    def list_namespaced_pod(self, namespace, label_selector):
        if label_selector.endswith("=0"):
            self.poll += 1
        pods = [
            NS(metadata=NS(name=n, creation_timestamp=i),
               status=NS(phase=phase, container_statuses=[NS(state=NS(terminated=NS(exit_code=code, reason="Error")))]
                         if code is not None else None))
            for i, (n, phase, code) in enumerate(self._tick().pods)
        ]
        return NS(items=pods)

    def read_namespaced_pod_log(self, pod_name, namespace, **kwargs):
        self.calls.append(("logs", pod_name))
        return [f"2024-03-22T02:17:{i:02d}.000000000Z {line}\n".encode() for i, line in enumerate(self.logs.get(pod_name, []))]


def launch(api: RecordingApi, gpus: int = 8):
    outcome = {}

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["10k"]))
    def checkpoint(context) -> dg.MaterializeResult:
        launcher = KubernetesJobLauncher(image="img", poll_interval_s=0.0, in_cluster=False).with_api(K8sApi(api, api))
        outcome["metadata"] = launcher.run(context, module="valley_assets.training.sft", params={"x": 1}, gpus=gpus,
                                           name="sft")
        return dg.MaterializeResult(metadata=outcome["metadata"])

    result = dg.materialize([checkpoint], partition_key="10k", raise_on_error=False)
    return result, outcome


def failure_messages(result) -> str:
    texts = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            texts.append(f"{error.cls_name}: {error.message}")
            error = error.cause
    return "\n".join(texts)


def test_success_returns_reported_metadata_and_keeps_the_job():
    api = RecordingApi(
        ticks=[Tick(), Tick(pods=[("p0", "Running", None)]), Tick(pods=[("p0", "Succeeded", 0)], condition=("Complete", "", ""))],
        logs={"p0": pipes_lines({"steps": 4, "final_loss": 1.5})},
    )
    result, outcome = launch(api)
    assert result.success, failure_messages(result)
    assert outcome["metadata"] == {"steps": 4, "final_loss": 1.5}
    kinds = [c[0] for c in api.calls]
    assert kinds[0] == "create_job" and "delete_job" not in kinds and "create_service" not in kinds
    assert ("logs", "p0") in api.calls


def test_code_error_fails_with_the_exit_code():
    api = RecordingApi(
        ticks=[Tick(pods=[("p0", "Running", None)]),
               Tick(pods=[("p0", "Failed", 1)], condition=("Failed", "PodFailurePolicy", "Container main exited 1"))],
        logs={"p0": pipes_lines({"steps": 0})[:2]},
    )
    result, _ = launch(api)
    assert not result.success
    text = failure_messages(result)
    assert "LaunchError" in text and "PodFailurePolicy" in text and "exit code 1" in text
    assert not any(c[0] == "delete_job" for c in api.calls)  # a failed Job stays for `kubectl logs`, TTL removes it


def test_preempted_pod_is_replaced_and_both_logs_are_followed():
    api = RecordingApi(
        ticks=[Tick(pods=[("p0", "Running", None)]),
               Tick(pods=[("p0", "Failed", 143)]),  # DisruptionTarget: the Job controller retries, no condition yet
               Tick(pods=[("p0", "Failed", 143), ("p1", "Running", None)]),
               Tick(pods=[("p0", "Failed", 143), ("p1", "Succeeded", 0)], condition=("Complete", "", ""))],
        logs={"p0": pipes_lines({})[:2], "p1": pipes_lines({"steps": 4, "resumed_from_step": 2})},
    )
    result, outcome = launch(api)
    assert result.success, failure_messages(result)
    assert outcome["metadata"]["resumed_from_step"] == 2
    assert [c[1] for c in api.calls if c[0] == "logs"] == ["p0", "p1"]


def test_cancellation_deletes_the_job_and_service():
    api = RecordingApi(ticks=[Tick(pods=[("p0", "Running", None)])], logs={"p0": []}, interrupt_at=1)
    result, _ = launch(api, gpus=16)  # 2 nodes: a headless Service is created too
    assert not result.success
    kinds = [c[0] for c in api.calls]
    assert kinds[:2] == ["create_service", "create_job"]
    assert ("delete_job", next(c[1] for c in api.calls if c[0] == "create_job"), "Background") in api.calls
    assert "delete_service" in kinds


def test_gpus_must_fill_whole_nodes():
    launcher = KubernetesJobLauncher(image="img")
    assert launcher.nodes_for(4) == (1, 4) and launcher.nodes_for(16) == (2, 8)
    with pytest.raises(LaunchError, match="multiple of gpus_per_node"):
        launcher.nodes_for(12)
