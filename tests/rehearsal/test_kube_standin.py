"""The product's Job manifests, run for real on the kube stand-in (tests/rehearsal/kube_standin) through the official
kubernetes client: pods as Docker containers of the trainer image (docker/trainer/build_offline.sh).

- a 2-index Indexed Job whose pods find each other through the headless Service's DNS names and all_reduce over
  torch.distributed's gloo backend (env, $(VAR) expansion, DNS, Indexed completions, rendezvous);
- a pod exiting 3 fails the Job through podFailurePolicy rule 1, with the Job controller's message;
- a disrupted pod of a one-node Job is replaced (rule 0: Ignore) and the replacement resumes from the checkpoint
  volume; a disrupted pod of a two-node Job fails it through rule 0 (FailJob), which the launcher reads as a
  disruption;
- every object the stand-in received validates with kubernetes-validate --strict for 1.30.0 and 1.33.0;
- `KubernetesJobLauncher` end to end: a Dagster asset launches a pipes program as a Job and gets its report.

Needs a Docker engine and the trainer image (VALLEY_TRAINER_IMAGE, default valley-trainer:rehearsal); skipped with
the reason when either is missing, failed instead under VALLEY_REQUIRE_DOCKER=1 (CI).
"""


import io
import json
import os
import tarfile
import time
import urllib.request
import uuid
from pathlib import Path

import dagster as dg
import kubernetes_validate
import pytest

from valley_assets.launch.job_spec import (
    CONTAINER_NAME,
    DISRUPTION_RULE,
    HF_TOKEN_KEY,
    INDEX_ANNOTATION,
    JobSpec,
    build_headless_service,
    build_job,
    to_manifest,
)
from valley_assets.launch.job_watch import failure_is_disruption, job_outcome
from valley_assets.launch.k8s_api import K8sApi
from valley_assets.launch.kubernetes import KubernetesJobLauncher
from valley_assets.launch.pod_sizing import PodResources

from .kube_standin import KubeStandin
from .kube_standin.cluster import compact_indexes, policy_verdict
from .kube_standin.podspec import expand

pytestmark = [pytest.mark.rehearsal]

IMAGE = os.environ.get("VALLEY_TRAINER_IMAGE", "valley-trainer:rehearsal")
K8S_VERSIONS = ("1.30.0", "1.33.0")
NS = "valley"


# --- the stand-in's own rules, without Docker ---------------------------------------------------------------------
def test_expansion_follows_the_kubelet():
    env = {"NODE_RANK": "1", "EMPTY": ""}
    assert expand("--machine_rank $(NODE_RANK)", env) == "--machine_rank 1"
    assert expand("$(MISSING) $$(NODE_RANK) $$ $(EMPTY)x", env) == "$(MISSING) $(NODE_RANK) $ x"


def test_policy_verdict_is_the_first_matching_rule_with_the_controller_message():
    policy = build_job(JobSpec(name="j", namespace=NS, image="i", command=["x"])).spec.pod_failure_policy
    rules = to_manifest(policy)

    def pod(code=None, disrupted=False):
        status = {"conditions": [{"type": "DisruptionTarget", "status": "True"}] if disrupted else []}
        if code is not None:
            status["containerStatuses"] = [{"name": CONTAINER_NAME, "state": {"terminated": {"exitCode": code}}}]
        return {"metadata": {"namespace": NS, "name": "j-0-abcde"}, "status": status}

    assert policy_verdict(rules, pod(3)) == (
        "FailJob", "Container main for pod valley/j-0-abcde failed with exit code 3 matching FailJob rule at index 1")
    # a preempted container exits 137, but rule 0 comes first
    assert policy_verdict(rules, pod(137, disrupted=True)) == (
        "Ignore", "Pod valley/j-0-abcde has condition DisruptionTarget matching Ignore rule at index 0")
    assert policy_verdict(rules, pod(0)) == ("Count", "")
    assert policy_verdict(None, pod(3)) == ("Count", "")
    assert compact_indexes({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"


# --- Docker-backed ------------------------------------------------------------------------------------------------
def _require_engine_and_image() -> None:
    why = None
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        try:
            client.images.get(IMAGE)
        except docker.errors.ImageNotFound:
            why = f"the trainer image {IMAGE} is not built (docker/trainer/build_offline.sh)"
    except Exception as exc:  # no engine, no socket, no permission
        why = f"no Docker engine: {exc}"
    if why is None:
        return
    if os.environ.get("VALLEY_REQUIRE_DOCKER") == "1":
        pytest.fail(f"VALLEY_REQUIRE_DOCKER=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def standin():
    _require_engine_and_image()
    # Each pod gets a small share of this 2-CPU machine; the node is sized so both pods of a 2-node Job fit.
    with KubeStandin(pod_backoff_s=1.0, node_capacity={"cpu": "4", "memory": "16Gi"}) as cluster:
        cluster.create_secret(NS, "hf-token", {HF_TOKEN_KEY: "hf_standin_not_a_real_token"})
        yield cluster


@pytest.fixture(scope="module")
def api(standin):
    return K8sApi.from_config(str(standin.kubeconfig_host), in_cluster=False)


def _spec(name: str, command: list[str], **kwargs) -> JobSpec:
    defaults = dict(namespace=NS, image=IMAGE, shm_size="256Mi", cpu="500m", memory="2Gi", hf_token_secret="hf-token",
                    env={"OMP_NUM_THREADS": "1"})
    return JobSpec(name=f"{name}-{uuid.uuid4().hex[:6]}", command=command, **{**defaults, **kwargs})


def _validate_received(standin: KubeStandin, since: int) -> None:
    """Every object received since `since` validates strictly, as the API server of each version would take it."""
    objects = standin.received[since:]
    assert objects, "nothing reached the stand-in"
    for manifest in objects:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)


def _submit(standin, api, spec: JobSpec):
    since = len(standin.received)
    if spec.nodes > 1:
        api.core.create_namespaced_service(NS, build_headless_service(spec))
    api.batch.create_namespaced_job(NS, build_job(spec))
    _validate_received(standin, since)


def _wait_job(api, name: str, timeout_s: float = 240):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.batch.read_namespaced_job_status(name, NS)
        outcome, detail = job_outcome(job)
        if outcome != "running":
            return job, outcome, detail
        time.sleep(0.5)
    pods = api.core.list_namespaced_pod(NS, label_selector=f"batch.kubernetes.io/job-name={name}").items
    states = {p.metadata.name: (p.status.phase, p.status.container_statuses[0].state if p.status.container_statuses
                                else None, _log(api, p.metadata.name) if p.status.phase != "Pending" else "")
              for p in pods}
    raise AssertionError(f"Job {name} still running after {timeout_s}s: {states}")


def _wait_pod(api, selector: str, phase: str = "Running", timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pods = [p for p in api.core.list_namespaced_pod(NS, label_selector=selector).items if p.status.phase == phase]
        if pods:
            return pods[0]
        time.sleep(0.3)
    raise AssertionError(f"no {phase} pod for {selector} after {timeout_s}s")


def _log(api, pod_name: str) -> str:
    # Unpreloaded: kubernetes 36's client returns a text body as str(bytes) ("b'...'") otherwise, on any server.
    return api.core.read_namespaced_pod_log(pod_name, NS, _preload_content=False).data.decode()


GLOO = """
import datetime, os, socket, torch, torch.distributed as dist
rank = int(os.environ["NODE_RANK"])
assert os.environ["JOB_COMPLETION_INDEX"] == str(rank), os.environ["JOB_COMPLETION_INDEX"]
dist.init_process_group("gloo", init_method=f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
                        rank=rank, world_size=2, timeout=datetime.timedelta(seconds=120))
value = torch.tensor([float(rank + 1)])
dist.all_reduce(value)
print(f"rank={rank} host={socket.gethostname()} master={socket.gethostbyname(os.environ['MASTER_ADDR'])} "
      f"sum={value.item()} token={os.environ['HF_TOKEN'][:10]}", flush=True)
dist.destroy_process_group()
"""


@pytest.mark.docker
def test_two_indexed_pods_rendezvous_over_the_headless_service_and_all_reduce(standin, api):
    spec = _spec("gloo", ["python", "-c", GLOO], nodes=2)
    _submit(standin, api, spec)
    job, outcome, detail = _wait_job(api, spec.name)
    pods = api.core.list_namespaced_pod(NS, label_selector=f"batch.kubernetes.io/job-name={spec.name}").items
    logs = {p.metadata.annotations[INDEX_ANNOTATION]: _log(api, p.metadata.name) for p in pods}
    assert outcome == "succeeded", (detail, logs)
    assert job.status.succeeded == 2 and job.status.completed_indexes == "0-1"
    assert sorted(logs) == ["0", "1"]
    for index, text in logs.items():
        assert f"rank={index} host={spec.name}-{index} " in text and "sum=3.0" in text, text
        assert "token=hf_standin" in text  # HF_TOKEN from the Secret through secretKeyRef
    # pod hostnames and labels as the Job controller sets them
    for pod in pods:
        index = pod.metadata.labels[INDEX_ANNOTATION]
        assert pod.spec.hostname == f"{spec.name}-{index}" and pod.spec.subdomain == spec.name
        assert pod.metadata.name.startswith(f"{spec.name}-{index}-")
        assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    api.core.delete_namespaced_service(spec.name, NS)


@pytest.mark.docker
def test_a_non_zero_exit_fails_the_job_through_rule_1(standin, api):
    spec = _spec("exit3", ["python", "-c", "import sys; print('failing', flush=True); sys.exit(3)"])
    _submit(standin, api, spec)
    job, outcome, detail = _wait_job(api, spec.name, timeout_s=120)
    [pod] = api.core.list_namespaced_pod(NS, label_selector=f"batch.kubernetes.io/job-name={spec.name}").items
    assert outcome == "failed"
    assert detail == (f"PodFailurePolicy: Container main for pod {NS}/{pod.metadata.name} failed with exit code 3 "
                      "matching FailJob rule at index 1")
    assert pod.status.phase == "Failed" and pod.status.container_statuses[0].state.terminated.exit_code == 3
    assert job.status.failed == 1 and not failure_is_disruption(job, [pod])
    assert "failing" in _log(api, pod.metadata.name)


RESUMABLE = """
import os, signal, sys, time
marker = "/checkpoints/started"
if os.path.exists(marker):
    print("resumed from", open(marker).read(), flush=True)
    sys.exit(0)
open(marker, "w").write(os.environ["HOSTNAME"])
print("first attempt, waiting to be preempted", flush=True)
time.sleep(600)
"""


@pytest.mark.docker
def test_a_disrupted_one_node_pod_is_replaced_without_counting_a_failure(standin, api):
    spec = _spec("preempt", ["python", "-c", RESUMABLE], checkpoint_pvc=f"ckpt-{uuid.uuid4().hex[:6]}")
    _submit(standin, api, spec)
    selector = f"batch.kubernetes.io/job-name={spec.name}"
    first = _wait_pod(api, selector)
    deadline = time.monotonic() + 60
    while "waiting to be preempted" not in _log(api, first.metadata.name):
        assert time.monotonic() < deadline, _log(api, first.metadata.name)
        time.sleep(0.3)
    standin.disrupt(NS, first.metadata.name, grace_period_s=1)
    job, outcome, detail = _wait_job(api, spec.name, timeout_s=120)
    pods = api.core.list_namespaced_pod(NS, label_selector=selector).items
    assert outcome == "succeeded", (detail, [(p.metadata.name, p.status.phase) for p in pods])
    # The preempted pod was deleted (gone once the controller accounted for it); the replacement has index 0 again.
    [replacement] = pods
    assert replacement.metadata.name != first.metadata.name
    assert replacement.metadata.labels[INDEX_ANNOTATION] == "0"
    assert f"resumed from {spec.name}-0" in _log(api, replacement.metadata.name)
    assert (job.status.failed or 0) == 0  # Ignore: not counted toward backoffLimit
    assert any(e[3] == f"pod {first.metadata.name}: failure ignored" for e in standin.events)


SLEEPER = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
print("up", flush=True)
time.sleep(600)
"""


@pytest.mark.docker
def test_a_disrupted_pod_of_a_two_node_job_fails_it_through_rule_0(standin, api):
    spec = _spec("preempt2", ["python", "-c", SLEEPER], nodes=2, checkpoint_pvc=f"ckpt-{uuid.uuid4().hex[:6]}")
    _submit(standin, api, spec)
    selector = f"batch.kubernetes.io/job-name={spec.name}"
    _wait_pod(api, selector + f",{INDEX_ANNOTATION}=0")
    victim = _wait_pod(api, selector + f",{INDEX_ANNOTATION}=1")
    # through the HTTP hook, as an operator or another process would play the preemption
    request = urllib.request.Request(
        f"{standin.url}/standin/v1/namespaces/{NS}/pods/{victim.metadata.name}/disrupt", method="POST",
        data=json.dumps({"gracePeriodSeconds": 1}).encode(),
        headers={"Authorization": f"Bearer {standin.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.load(answer)["status"] == "Success"
    job, outcome, detail = _wait_job(api, spec.name, timeout_s=120)
    assert outcome == "failed"
    assert detail == (f"PodFailurePolicy: Pod {NS}/{victim.metadata.name} has condition DisruptionTarget matching "
                      f"FailJob rule at index {DISRUPTION_RULE}")
    assert failure_is_disruption(job, api.core.list_namespaced_pod(NS, label_selector=selector).items)
    # The controller terminated the surviving pod; nothing of the Job is left running.
    assert job.status.active == 0
    api.core.delete_namespaced_service(spec.name, NS)


@pytest.mark.docker
def test_deleting_a_job_in_the_background_removes_its_containers(standin, api):
    import docker

    spec = _spec("cancel", ["python", "-c", SLEEPER])
    _submit(standin, api, spec)
    pod = _wait_pod(api, f"batch.kubernetes.io/job-name={spec.name}")
    from kubernetes import client as k8s

    api.batch.delete_namespaced_job(spec.name, NS, body=k8s.V1DeleteOptions(propagation_policy="Background"))
    deadline = time.monotonic() + 60
    engine = docker.from_env()
    while engine.containers.list(all=True, filters={"label": f"valley.standin.pod={NS}/{pod.metadata.name}"}):
        assert time.monotonic() < deadline, "the deleted Job's container is still there"
        time.sleep(0.5)
    assert not api.core.list_namespaced_pod(NS, label_selector=f"batch.kubernetes.io/job-name={spec.name}").items


@pytest.mark.docker
def test_a_finished_job_is_deleted_after_its_ttl(standin, api):
    from kubernetes.client.exceptions import ApiException

    spec = _spec("ttl", ["python", "-c", "print('done')"], ttl_seconds_after_finished=2)
    _submit(standin, api, spec)
    _, outcome, detail = _wait_job(api, spec.name, timeout_s=120)
    assert outcome == "succeeded", detail
    deadline = time.monotonic() + 30
    while True:
        try:
            api.batch.read_namespaced_job_status(spec.name, NS)
        except ApiException as exc:
            assert exc.status == 404
            break
        assert time.monotonic() < deadline, "the Job outlived its ttlSecondsAfterFinished"
        time.sleep(0.5)
    deadline = time.monotonic() + 30
    while api.core.list_namespaced_pod(NS, label_selector=f"batch.kubernetes.io/job-name={spec.name}").items:
        assert time.monotonic() < deadline, "the expired Job's pods are still listed"
        time.sleep(0.5)


@pytest.mark.docker
def test_failures_no_rule_matches_count_toward_backoff_limit(standin, api):
    """Without a podFailurePolicy every failure counts: backoffLimit 1 -> a second pod, then BackoffLimitExceeded."""
    manifest = to_manifest(build_job(_spec("backoff", ["python", "-c", "import sys; sys.exit(1)"], backoff_limit=1)))
    del manifest["spec"]["podFailurePolicy"]
    api.batch.create_namespaced_job(NS, manifest)
    job, outcome, detail = _wait_job(api, manifest["metadata"]["name"], timeout_s=120)
    assert (outcome, detail) == ("failed", "BackoffLimitExceeded: Job has reached the specified backoff limit")
    assert job.status.failed == 2
    pods = api.core.list_namespaced_pod(NS, label_selector=f"batch.kubernetes.io/job-name={job.metadata.name}").items
    assert len(pods) == 2 and {p.metadata.labels[INDEX_ANNOTATION] for p in pods} == {"0"}


@pytest.mark.docker
def test_runtime_class_maps_to_a_docker_runtime_and_an_unknown_class_is_refused():
    _require_engine_and_image()
    from kubernetes.client.exceptions import ApiException

    import docker

    with KubeStandin({"standin-runc": "runc"}) as cluster:
        api = K8sApi.from_config(str(cluster.kubeconfig_host), in_cluster=False)
        spec = _spec("rtc", ["python", "-c", "print('ok')"], hf_token_secret=None)
        manifest = to_manifest(build_job(spec))
        manifest["spec"]["template"]["spec"]["runtimeClassName"] = "gvisor"
        with pytest.raises(ApiException) as refused:
            api.batch.create_namespaced_job(NS, manifest)
        assert refused.value.status == 422 and "gvisor" in refused.value.body
        manifest["spec"]["template"]["spec"]["runtimeClassName"] = "standin-runc"
        api.batch.create_namespaced_job(NS, manifest)
        _, outcome, detail = _wait_job(api, spec.name, timeout_s=120)
        assert outcome == "succeeded", detail
        [pod] = api.core.list_namespaced_pod(NS, label_selector=f"batch.kubernetes.io/job-name={spec.name}").items
        [container] = docker.from_env().containers.list(
            all=True, filters={"label": f"valley.standin.pod={NS}/{pod.metadata.name}"})
        assert container.attrs["HostConfig"]["Runtime"] == "runc"


POD_PROBE = """
import json, os
out = {"uid": os.getuid(), "pod": os.environ["POD_NAME"], "namespace": os.environ["POD_NAMESPACE"],
       "index": os.environ["JOB_COMPLETION_INDEX"], "from_env_from": os.environ.get("AWS_ACCESS_KEY_ID")}
try:
    open("/probe", "w")
    out["rootfs_writable"] = True
except OSError:
    out["rootfs_writable"] = False
shm = os.statvfs("/dev/shm")
out["shm_bytes"] = shm.f_blocks * shm.f_frsize
out["secret_file"] = open("/etc/hf/" + os.environ["SECRET_KEY"]).read()
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
out["cap_eff"], out["no_new_privs"] = status["CapEff"].strip(), status["NoNewPrivs"].strip()
from kubernetes import client, config  # the API from inside a pod, through the containers' kubeconfig
config.load_kube_config(config_file="/standin/kubeconfig-containers.yaml")
out["api_phase"] = client.CoreV1Api().read_namespaced_pod(out["pod"], out["namespace"]).status.phase
config.load_incluster_config()  # KUBERNETES_SERVICE_HOST/PORT + the mounted service account, over TLS
out["in_cluster_phase"] = client.CoreV1Api().read_namespaced_pod(out["pod"], out["namespace"]).status.phase
out["sa_namespace"] = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
print(json.dumps(out), flush=True)
"""


@pytest.mark.docker
def test_a_pod_gets_its_env_volumes_limits_and_security_context(standin, api):
    """envFrom/secretKeyRef/fieldRef, secret + hostPath + Memory emptyDir volumes, cpu/memory limits and a
    restricted securityContext, as a kubelet would apply them; and the API answers from inside the pod, through the
    containers' kubeconfig and through in-cluster config."""
    from kubernetes import client as k8s

    import docker

    standin.create_secret(NS, "object-store", {"AWS_ACCESS_KEY_ID": "standin-key"})
    spec = _spec("podprobe", ["python", "-c", POD_PROBE], env={"SECRET_KEY": HF_TOKEN_KEY},
                 env_from_secrets=["object-store"], shm_size="96Mi")
    job = build_job(spec)
    pod_spec = job.spec.template.spec
    container = pod_spec.containers[0]
    container.env += [
        k8s.V1EnvVar(name="POD_NAME", value_from=k8s.V1EnvVarSource(
            field_ref=k8s.V1ObjectFieldSelector(field_path="metadata.name"))),
        k8s.V1EnvVar(name="POD_NAMESPACE", value_from=k8s.V1EnvVarSource(
            field_ref=k8s.V1ObjectFieldSelector(field_path="metadata.namespace")))]
    container.resources.limits = {**(container.resources.limits or {}), "cpu": "500m"}
    container.security_context = k8s.V1SecurityContext(
        run_as_user=1000, run_as_non_root=True, read_only_root_filesystem=True, allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]), seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"))
    pod_spec.volumes += [
        k8s.V1Volume(name="hf", secret=k8s.V1SecretVolumeSource(secret_name="hf-token")),
        k8s.V1Volume(name="standin", host_path=k8s.V1HostPathVolumeSource(path=str(standin.kubeconfig_dir),
                                                                          type="Directory"))]
    container.volume_mounts += [k8s.V1VolumeMount(name="hf", mount_path="/etc/hf", read_only=True),
                                k8s.V1VolumeMount(name="standin", mount_path="/standin", read_only=True)]
    since = len(standin.received)
    api.batch.create_namespaced_job(NS, job)
    _validate_received(standin, since)
    _, outcome, detail = _wait_job(api, spec.name, timeout_s=120)
    [pod] = api.core.list_namespaced_pod(NS, label_selector=f"batch.kubernetes.io/job-name={spec.name}").items
    text = _log(api, pod.metadata.name)
    assert outcome == "succeeded", (detail, text)
    seen = json.loads(text.strip().splitlines()[-1])
    assert seen == {"uid": 1000, "pod": pod.metadata.name, "namespace": NS, "index": "0",
                    "from_env_from": "standin-key", "rootfs_writable": False, "shm_bytes": 96 * 2**20,
                    "secret_file": "hf_standin_not_a_real_token", "cap_eff": "0000000000000000", "no_new_privs": "1",
                    "api_phase": "Running", "in_cluster_phase": "Running", "sa_namespace": NS}
    [engine_container] = docker.from_env().containers.list(
        all=True, filters={"label": f"valley.standin.pod={NS}/{pod.metadata.name}"})
    host_config = engine_container.attrs["HostConfig"]
    assert host_config["NanoCpus"] == 500_000_000 and host_config["Memory"] == 2 * 2**30
    assert host_config["ReadonlyRootfs"] and host_config["CapDrop"] == ["ALL"]


# --- the product's launcher end to end ----------------------------------------------------------------------------
PIPES_PROGRAM = b'''"""A trivial dagster-pipes program: reads its extras, logs, reports one materialization.

With PROBE_WAIT_FOR_DISRUPTION set, each rank's first run marks the checkpoint volume and waits to be disrupted;
a restarted rank finds its mark and reports at once (as training resumes from its checkpoint).
"""
import os
import signal
import sys
import time

from dagster_pipes import open_dagster_pipes

signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
rank = os.environ.get("NODE_RANK", "0")
marker = f"/checkpoints/started-{rank}"
resumed = os.path.exists(marker)
if os.environ.get("PROBE_WAIT_FOR_DISRUPTION") and not resumed:
    open(marker, "w").write(os.environ["HOSTNAME"])
    print("waiting to be disrupted", flush=True)
    time.sleep(600)
with open_dagster_pipes() as pipes:
    pipes.log.info(f"pod {os.environ['HOSTNAME']} rank {rank}")
    pipes.report_asset_materialization(metadata={"doubled": pipes.extras["x"] * 2, "rank": int(rank),
                                                 "resumed": resumed, "host": os.environ["HOSTNAME"]})
'''


@pytest.fixture(scope="module")
def probe_image(standin):
    """The trainer image plus the pipes program at /opt/valley/standin_pipes_probe.py (importable from WORKDIR)."""
    import docker

    engine = docker.from_env()
    tag = f"{IMAGE.split(':')[0]}:standin-pipes-probe"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("standin_pipes_probe.py")
        info.size = len(PIPES_PROGRAM)
        tar.addfile(info, io.BytesIO(PIPES_PROGRAM))
    container = engine.containers.create(IMAGE, command=["true"])
    try:
        container.put_archive("/opt/valley", archive.getvalue())
        container.commit(*tag.split(":"))
    finally:
        container.remove(force=True)
    yield tag
    engine.images.remove(tag, force=True)


@pytest.mark.docker
def test_the_launcher_runs_a_pipes_program_as_a_job_end_to_end(standin, probe_image):
    launcher = KubernetesJobLauncher(
        namespace=NS, image=probe_image, kubeconfig_file=str(standin.kubeconfig_host), in_cluster=False,
        training=PodResources(cpu="500m", memory="1Gi", shm_size="64Mi"), node_selector={}, tolerations=[],
        poll_interval_s=0.5, timeout_s=180)
    since = len(standin.received)

    @dg.asset
    def probe(context: dg.AssetExecutionContext, k8s_launcher: KubernetesJobLauncher):
        return dg.MaterializeResult(metadata=k8s_launcher.run(context, module="standin_pipes_probe",
                                                              params={"x": 21}, name="probe"))

    result = dg.materialize([probe], resources={"k8s_launcher": launcher}, raise_on_error=False)
    failures = [e.step_failure_data.error.to_string() for e in result.get_step_failure_events()]
    assert result.success, failures
    [materialization] = result.asset_materializations_for_node("probe")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["doubled"] == 42 and metadata["rank"] == 0
    jobs = [m for m in standin.received[since:] if m.get("kind") == "Job"]
    assert len(jobs) == 1
    _validate_received(standin, since)


@pytest.mark.docker
def test_the_launcher_restarts_a_disrupted_two_node_job_as_a_new_attempt(standin, probe_image):
    """gpus=2 on 1-GPU nodes: two pods under `accelerate launch` (static rendezvous at rank 0's DNS name); rank 1 is
    preempted, the Job fails through rule 0, the launcher submits `<job>-r1`, which completes."""
    import threading

    launcher = KubernetesJobLauncher(
        namespace=NS, image=probe_image, kubeconfig_file=str(standin.kubeconfig_host), in_cluster=False,
        gpus_per_node=1, checkpoint_pvc=f"ckpt-{uuid.uuid4().hex[:6]}", env={"PROBE_WAIT_FOR_DISRUPTION": "1",
                                                                             "OMP_NUM_THREADS": "1"},
        training=PodResources(cpu_per_gpu="500m", memory_per_gpu="2Gi", shm_size="64Mi"), node_selector={},
        tolerations=[], poll_interval_s=0.5, timeout_s=400)
    since = len(standin.received)

    @dg.asset
    def probe2(context: dg.AssetExecutionContext, k8s_launcher: KubernetesJobLauncher):
        return dg.MaterializeResult(metadata=k8s_launcher.run(context, module="standin_pipes_probe",
                                                              params={"x": 5}, gpus=2, name="probe2"))

    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=dg.materialize(
        [probe2], resources={"k8s_launcher": launcher}, raise_on_error=False)))
    runner.start()
    # Wait until both ranks of the first attempt are up and waiting, then preempt rank 1.
    deadline = time.monotonic() + 180
    while True:
        assert time.monotonic() < deadline and runner.is_alive(), "the first attempt's ranks never came up"
        jobs = [m["metadata"]["name"] for m in standin.received[since:] if m.get("kind") == "Job"]
        pods = standin.pods(NS, f"batch.kubernetes.io/job-name={jobs[0]}") if jobs else []
        waiting = [p for p in pods if any("waiting to be disrupted" in line
                                          for line in standin.pod_log(NS, p["metadata"]["name"]))]
        if len(waiting) == 2:
            break
        time.sleep(0.5)
    [victim] = [p for p in waiting if p["metadata"]["labels"][INDEX_ANNOTATION] == "1"]
    standin.disrupt(NS, victim["metadata"]["name"], grace_period_s=2)
    runner.join(timeout=400)
    result = outcome["result"]
    failures = [e.step_failure_data.error.to_string() for e in result.get_step_failure_events()]
    assert result.success, failures
    [materialization] = result.asset_materializations_for_node("probe2")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    first = jobs[0]
    assert metadata["doubled"] == 10 and metadata["rank"] == 0 and metadata["resumed"] is True
    assert metadata["host"] == f"{first}-r1-0"  # rank 0 of the restarted attempt reported
    submitted = [m["metadata"]["name"] for m in standin.received[since:] if m.get("kind") == "Job"]
    assert submitted == [first, f"{first}-r1"]
    services = [m["metadata"]["name"] for m in standin.received[since:] if m.get("kind") == "Service"]
    assert services == submitted
    [command] = {tuple(m["spec"]["template"]["spec"]["containers"][0]["command"])
                 for m in standin.received[since:] if m.get("kind") == "Job"}
    assert command[:2] == ("accelerate", "launch") and "$(MASTER_ADDR)" in command
    _validate_received(standin, since)


ORPHAN_MAKER = """
import sys, time
from tests.rehearsal.kube_standin import KubeStandin
from valley_assets.launch.job_spec import JobSpec, build_job, to_manifest
standin = KubeStandin().start()
job = to_manifest(build_job(JobSpec(name="orphan", namespace="valley", image=sys.argv[1], shm_size="64Mi",
                                    command=["python", "-c", "import time; time.sleep(600)"])))
standin.cluster.create("jobs", "valley", job)
while not any(p["status"].get("phase") == "Running" for p in standin.pods("valley")):
    time.sleep(0.2)
print(standin.instance_id, flush=True)
time.sleep(600)
"""


@pytest.mark.docker
def test_reap_orphans_removes_what_a_killed_standin_left_and_nothing_else(standin, api):
    import signal
    import subprocess
    import sys

    import docker

    from .kube_standin.cluster import OWNER_LABEL, reap_orphans

    spec = _spec("alive", ["python", "-c", SLEEPER])  # a live stand-in's pod must survive the reaping
    _submit(standin, api, spec)
    _wait_pod(api, f"batch.kubernetes.io/job-name={spec.name}")
    maker = subprocess.Popen([sys.executable, "-c", ORPHAN_MAKER, IMAGE], stdout=subprocess.PIPE, text=True,
                             cwd=str(Path(__file__).resolve().parents[2]))
    try:
        instance = maker.stdout.readline().strip()
        assert instance, "the orphan maker did not start its pod"
    finally:
        maker.send_signal(signal.SIGKILL)
        maker.wait()
    engine = docker.from_env()
    orphans = engine.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={instance}"})
    assert len(orphans) == 1  # SIGKILL: nothing ran the stand-in's cleanup
    assert reap_orphans(engine) >= 2  # its container and its namespace's network
    assert not engine.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={instance}"})
    assert not engine.networks.list(filters={"label": f"{OWNER_LABEL}={instance}"})
    assert engine.containers.list(filters={"label": f"{OWNER_LABEL}={standin.instance_id}"})
    api.batch.delete_namespaced_job(spec.name, NS, propagation_policy="Background")


@pytest.mark.docker
def test_with_required_references_a_missing_service_account_or_claim_holds_the_pods_back():
    _require_engine_and_image()
    with KubeStandin(require_referenced_objects=True) as cluster:
        api = K8sApi.from_config(str(cluster.kubeconfig_host), in_cluster=False)
        spec = _spec("refs", ["python", "-c", "print('ok')"], hf_token_secret=None, service_account="valley-runner",
                     checkpoint_pvc="checkpoints")
        api.batch.create_namespaced_job(NS, build_job(spec))
        selector = f"batch.kubernetes.io/job-name={spec.name}"
        time.sleep(2)
        assert not api.core.list_namespaced_pod(NS, label_selector=selector).items  # refused by admission
        assert any(e[2] == "FailedCreate" and 'serviceaccount "valley-runner" not found' in e[3] for e in cluster.events)
        cluster.create_service_account(NS, "valley-runner")
        pod = _wait_pod(api, selector, phase="Pending")
        deadline = time.monotonic() + 30
        while True:  # bound only once the claim exists
            pod = api.core.read_namespaced_pod(pod.metadata.name, NS)
            scheduled = {c.type: c for c in pod.status.conditions or []}.get("PodScheduled")
            if scheduled is not None and scheduled.reason == "Unschedulable":
                break
            assert time.monotonic() < deadline, pod.status
            time.sleep(0.3)
        assert 'persistentvolumeclaim "checkpoints" not found' in scheduled.message
        cluster.create_persistent_volume_claim(NS, "checkpoints")
        _, outcome, detail = _wait_job(api, spec.name, timeout_s=120)
        assert outcome == "succeeded", detail
