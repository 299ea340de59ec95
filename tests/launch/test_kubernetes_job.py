"""The Kubernetes Job launcher: manifests validate for 1.30 and 1.33, the failure policy per node count, and the
state handling against a recording double of the batch/core APIs (success, code error, preemption then retry in
place or as a whole-Job restart, cancellation)."""

import json
import re
from pathlib import Path

import dagster as dg
import kubernetes_validate
import pytest
from dagster_pipes import _make_message, _normalize_param_metadata
from k8s_double import (
    API_FACTORY,
    PodState,
    ScriptedCluster,
    Tick,
    disruption_verdict,
    exit_code_verdict,
    install,
    make_job_status,
    make_pod,
    step_failure_text,
)

from valley_assets.launch.base import LaunchError
from valley_assets.launch.job_spec import (
    EKS_H100_NODE_SELECTOR,
    GKE_H100_NODE_SELECTOR,
    JobSpec,
    build_headless_service,
    build_job,
    job_name,
    label_value,
    launch_command,
    to_manifest,
)
from valley_assets.launch.job_watch import failure_is_disruption
from valley_assets.launch.kubernetes import KubernetesJobLauncher

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
    # One node: the controller replaces a disrupted pod in place. Several: the Job fails fast and the launcher
    # restarts every rank together (a lone replacement rank cannot rejoin the others' collectives).
    assert rules[0] == {"action": "Ignore" if nodes == 1 else "FailJob",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1] == {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [0]}}
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


# --- the state handling against a recording double ------------------------------------------------------------------
def pipes_lines(metadata: dict | None, log: str = "training") -> list[str]:
    """What the entrypoint writes to stderr through dagster-pipes; metadata=None: it died before reporting."""
    messages = [_make_message("opened", {}), _make_message("log", {"message": log, "level": "INFO"})]
    if metadata is not None:
        messages += [
            _make_message("report_asset_materialization", {
                "asset_key": "checkpoint", "data_version": None,
                "metadata": _normalize_param_metadata(metadata, "report_asset_materialization", "metadata")}),
            _make_message("closed", {}),
        ]
    return [json.dumps(m) for m in messages]


def launch(cluster: ScriptedCluster, gpus: int = 8, **launcher_config):
    install(cluster)
    launcher = KubernetesJobLauncher(image="img", poll_interval_s=0.0, api_factory=API_FACTORY,
                                     checkpoint_pvc="valley-checkpoints", **launcher_config)
    outcome = {}

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["10k"]), required_resource_keys={"launcher"})
    def checkpoint(context) -> dg.MaterializeResult:
        outcome["metadata"] = context.resources.launcher.run(
            context, module="valley_assets.training.sft", params={"x": 1}, gpus=gpus, name="sft")
        return dg.MaterializeResult(metadata=outcome["metadata"])

    # The launcher is a resource: Dagster rebuilds it from its config, and the double is found through api_factory.
    result = dg.materialize([checkpoint], partition_key="10k", resources={"launcher": launcher}, raise_on_error=False)
    return result, outcome


RUNNING = PodState("p0")
DONE = ("Complete", "", "")


def test_success_returns_reported_metadata_and_keeps_the_job():
    cluster = ScriptedCluster(
        [[Tick(), Tick([RUNNING]), Tick([PodState("p0", "Succeeded", 0)], DONE)]],
        logs={"p0": pipes_lines({"steps": 4, "final_loss": 1.5})},
    )
    result, outcome = launch(cluster)
    assert result.success, step_failure_text(result)
    assert outcome["metadata"] == {"steps": 4, "final_loss": 1.5}
    assert cluster.calls[0][0] == "create_job" and not cluster.names("delete_job") and not cluster.names("create_service")
    assert cluster.names("logs") == ["p0"]
    env = {e.name: e.value for e in cluster.jobs[0].spec.template.spec.containers[0].env}
    assert env["VALLEY_STAGING_DIR"] == "/checkpoints/staging" and env["DAGSTER_PIPES_CONTEXT"]


def test_code_error_fails_with_the_exit_code_and_is_not_retried():
    cluster = ScriptedCluster(
        [[Tick([RUNNING]), Tick([PodState("p0", "Failed", 1)], exit_code_verdict("p0", 1))]],
        logs={"p0": pipes_lines(None)},
    )
    result, _ = launch(cluster)
    assert not result.success
    text = step_failure_text(result)
    assert "LaunchError" in text and "PodFailurePolicy" in text and "exit code 1" in text
    assert len(cluster.jobs) == 1 and not cluster.names("delete_job")  # kept for `kubectl logs`, TTL removes it


def test_single_node_preemption_is_retried_in_place_and_both_logs_are_followed():
    preempted = PodState("p0", "Failed", 143, disrupted=True)  # Ignore rule: the controller makes p1, no condition
    cluster = ScriptedCluster(
        [[Tick([RUNNING]), Tick([preempted]), Tick([preempted, PodState("p1")]),
          Tick([preempted, PodState("p1", "Succeeded", 0)], DONE)]],
        logs={"p0": pipes_lines(None), "p1": pipes_lines({"steps": 4, "resumed_from_step": 2})},
    )
    result, outcome = launch(cluster)
    assert result.success, step_failure_text(result)
    assert outcome["metadata"]["resumed_from_step"] == 2
    assert cluster.names("logs") == ["p0", "p1"] and len(cluster.jobs) == 1


def two_node_pods(prefix: str, phase0="Running", phase1="Running", code0=None, code1=None, disrupted0=False):
    return [PodState(f"{prefix}-0", phase0, code0, index=0, disrupted=disrupted0),
            PodState(f"{prefix}-1", phase1, code1, index=1)]


def test_multi_node_preemption_restarts_every_rank_as_a_new_job():
    cluster = ScriptedCluster(
        [
            # Attempt 0: node 0 is preempted; FailJob on the disruption rule, the controller stops rank 1.
            [Tick(two_node_pods("a")),
             Tick(two_node_pods("a", "Failed", "Failed", 143, 137, disrupted0=True), disruption_verdict("a-0"))],
            # Attempt 1: both ranks start together, resume, finish.
            [Tick(two_node_pods("b")), Tick(two_node_pods("b", "Succeeded", "Succeeded", 0, 0), DONE)],
        ],
        logs={"a-0": pipes_lines(None), "b-0": pipes_lines({"steps": 8, "resumed_from_step": 6})},
    )
    result, outcome = launch(cluster, gpus=16)
    assert result.success, step_failure_text(result)
    assert outcome["metadata"] == {"steps": 8, "resumed_from_step": 6}
    first, second = cluster.names("create_job")
    assert second == f"{first}-r1" and cluster.names("create_service") == [first, second]
    assert cluster.names("delete_service") == [first, second] and not cluster.names("delete_job")
    assert cluster.names("logs") == ["a-0", "b-0"]  # rank 0 only: the single pipes writer
    restarted = to_manifest(cluster.jobs[1])
    validate(restarted)
    assert restarted["metadata"]["labels"]["valley.dev/attempt"] == "1"
    env = {e["name"]: e.get("value") for e in restarted["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MASTER_ADDR"] == f"{second}-0.{second}"  # the new attempt's own rendezvous host


def test_multi_node_peer_exit_racing_the_preemption_still_counts_as_a_disruption():
    # Rank 1 lost its peer and exited 1 before the preempted pod was terminal: the exit-code rule won the race, but
    # a pod of the attempt carries DisruptionTarget.
    racing = two_node_pods("a", "Failed", "Failed", 143, 1, disrupted0=True)
    cluster = ScriptedCluster(
        [[Tick(two_node_pods("a")), Tick(racing, exit_code_verdict("a-1", 1))],
         [Tick(two_node_pods("b", "Succeeded", "Succeeded", 0, 0), DONE)]],
        logs={"a-0": pipes_lines(None), "b-0": pipes_lines({"steps": 8})},
    )
    result, _ = launch(cluster, gpus=16)
    assert result.success, step_failure_text(result)
    assert len(cluster.jobs) == 2


def test_multi_node_code_error_is_not_restarted():
    cluster = ScriptedCluster(
        [[Tick(two_node_pods("a")), Tick(two_node_pods("a", "Failed", "Failed", 1, 137), exit_code_verdict("a-0", 1))],
         [Tick(two_node_pods("b"))]],
        logs={"a-0": pipes_lines(None)},
    )
    result, _ = launch(cluster, gpus=16)
    assert not result.success
    assert "exit code 1" in step_failure_text(result) and len(cluster.jobs) == 1


def test_restarts_are_bounded_by_max_restarts():
    disrupted = [Tick(two_node_pods("a")),
                 Tick(two_node_pods("a", "Failed", "Failed", 143, 137, disrupted0=True), disruption_verdict("a-0"))]
    cluster = ScriptedCluster([disrupted, disrupted], logs={})
    result, _ = launch(cluster, gpus=16, max_restarts=1)
    assert not result.success
    assert "max_restarts=1 spent" in step_failure_text(result) and len(cluster.jobs) == 2


def test_cancellation_deletes_the_job_and_service():
    cluster = ScriptedCluster([[Tick(two_node_pods("a"))]], logs={"a-0": []}, interrupt_at=(0, 1))
    result, _ = launch(cluster, gpus=16)  # 2 nodes: a headless Service is created too
    assert not result.success
    [job] = cluster.names("create_job")
    assert [c[0] for c in cluster.calls[:2]] == ["create_service", "create_job"]
    assert ("delete_job", job, "Background") in cluster.calls and cluster.names("delete_service") == [job]


def test_cancellation_during_a_restart_deletes_the_restarted_job():
    cluster = ScriptedCluster(
        [[Tick(two_node_pods("a", "Failed", "Failed", 143, 137, disrupted0=True), disruption_verdict("a-0"))],
         [Tick(two_node_pods("b"))]],
        logs={}, interrupt_at=(1, 2))
    result, _ = launch(cluster, gpus=16)
    assert not result.success
    first, second = cluster.names("create_job")
    assert cluster.names("delete_job") == [second]  # the failed first attempt finished; only the live one goes


def test_failure_is_disruption_reads_the_rule_index_and_pod_conditions():
    calm = [make_pod("j", PodState("j-0", "Failed", 1), 0)]
    assert failure_is_disruption(make_job_status("j", disruption_verdict("j-0")), calm)
    assert not failure_is_disruption(make_job_status("j", exit_code_verdict("j-0", 1)), calm)
    assert not failure_is_disruption(make_job_status("j", ("Failed", "BackoffLimitExceeded", "")), calm)
    assert not failure_is_disruption(make_job_status("j", ("Failed", "PodFailurePolicy", "... rule at index 10")), calm)
    stormy = [*calm, make_pod("j", PodState("j-1", "Failed", 143, index=1, disrupted=True), 1)]
    assert failure_is_disruption(make_job_status("j", exit_code_verdict("j-0", 1)), stormy)


def test_multi_node_needs_a_shared_checkpoint_volume():
    launcher = KubernetesJobLauncher(image="img", checkpoint_pvc=None)
    with pytest.raises(LaunchError, match="checkpoint_pvc"):
        launcher.job_spec(dg.build_asset_context(), module="m", gpus=16, name="sft", env={})


@pytest.mark.parametrize("path, message", [("nocolon", "must look like"), ("no_such_module:f", "cannot be loaded"),
                                           ("k8s_double:API_FACTORY", "not callable")])
def test_bad_api_factory_is_named(path, message):
    with pytest.raises(LaunchError, match=message):
        KubernetesJobLauncher(image="img", api_factory=path).api()


def test_gpus_must_fill_whole_nodes():
    launcher = KubernetesJobLauncher(image="img")
    assert launcher.nodes_for(4) == (1, 4) and launcher.nodes_for(16) == (2, 8)
    with pytest.raises(LaunchError, match="multiple of gpus_per_node"):
        launcher.nodes_for(12)
