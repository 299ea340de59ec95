"""One place builds every Job: `KubernetesJobLauncher.job_spec` -> `build_job`, for each kind of launch.

Checked here on the launcher itself (no API calls): the process model per kind (accelerate only for distributed
training; vLLM generation is one process whatever its tensor parallelism), per-launch sizing, the image per kind,
Secrets (HF_TOKEN, envFrom), the CPU rehearsal's 2 pods x 1 rank shape, and that every shape validates strictly for
Kubernetes 1.30 and 1.33. The evaluation assets' GPU count comes from the evaluation settings, not the training's.
"""

from types import SimpleNamespace

import dagster as dg
import kubernetes_validate
import pytest

from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.launch.base import LaunchError
from valley_assets.launch.job_spec import HF_TOKEN_KEY, JobSpec, build_headless_service, build_job, to_manifest
from valley_assets.launch.kubernetes import KubernetesJobLauncher
from valley_assets.launch.local import LocalProcessLauncher
from valley_assets.launch.quantity import scale_quantity

K8S_VERSIONS = ("1.30.0", "1.33.0")
SFT = "valley_assets.training.sft"
GENERATION = "valley_assets.generation.run"
RUN_ID = "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"


def validate(manifest: dict) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)


def context():
    return SimpleNamespace(run_id=RUN_ID)


def production_launcher(**overrides) -> KubernetesJobLauncher:
    """The production profile's launcher, built the way the code location builds it."""
    from valley_assets.resources import build_resources

    cfg = load_study_config(PROFILES_DIR / "production.yaml",
                            overrides={"launch": {"kubernetes": overrides}} if overrides else None)
    launcher = build_resources(cfg)["launcher"]
    assert isinstance(launcher, KubernetesJobLauncher)
    return launcher


def job_for(launcher, *, module, gpus, kind, name="launch"):
    spec = launcher.job_spec(context(), module=module, gpus=gpus, name=name, env={"DAGSTER_PIPES_CONTEXT": "x"},
                             kind=kind)
    job = to_manifest(build_job(spec))
    validate(job)
    if spec.nodes > 1:
        validate(to_manifest(build_headless_service(spec)))
    return spec, job


def container_of(job: dict) -> dict:
    [container] = job["spec"]["template"]["spec"]["containers"]
    return container


# --- the process model per kind -------------------------------------------------------------------------------------
@pytest.mark.parametrize("tp", [1, 2, 8])
def test_vllm_generation_is_one_process_on_its_tensor_parallel_gpus(tp):
    """Defect 7: with tp > 1 the generation entrypoint ran under `accelerate launch`: tp engines, each on every GPU."""
    spec, job = job_for(production_launcher(), module=GENERATION, gpus=tp, kind="generation")
    container = container_of(job)
    assert container["command"] == ["python", "-m", GENERATION]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(tp)
    assert spec.nodes == 1 and job["spec"]["completions"] == 1
    assert job["spec"]["template"]["metadata"]["labels"]["valley.dev/kind"] == "generation"


def test_generation_never_spans_nodes():
    with pytest.raises(LaunchError, match="cannot span nodes"):
        production_launcher().job_spec(context(), module=GENERATION, gpus=16, name="gen", env={}, kind="generation")


def test_training_runs_accelerate_over_every_gpu():
    _, job = job_for(production_launcher(), module=SFT, gpus=8, kind="training")
    command = container_of(job)["command"]
    assert command[:2] == ["accelerate", "launch"] and command[-2:] == ["-m", SFT]
    assert command[command.index("--num_processes") + 1] == "8"
    assert command[command.index("--num_machines") + 1] == "1"


def test_unknown_kind_is_named():
    with pytest.raises(LaunchError, match="unknown launch kind 'eval'"):
        production_launcher().job_spec(context(), module=GENERATION, gpus=1, name="g", env={}, kind="eval")


def test_local_launcher_runs_generation_as_one_process():
    local = LocalProcessLauncher()
    assert local.command(GENERATION, 2, kind="generation")[1:] == ["-m", GENERATION]
    assert "torch.distributed.run" in local.command(SFT, 2, kind="training")


# --- sizing follows the launch --------------------------------------------------------------------------------------
def test_pod_requests_follow_the_launch_not_the_trainer():
    """Defect 7: a 1-GPU generation Job requested the trainer's 64 CPU / 800Gi."""
    launcher = production_launcher()
    _, gen1 = job_for(launcher, module=GENERATION, gpus=1, kind="generation")
    _, gen2 = job_for(launcher, module=GENERATION, gpus=2, kind="generation")
    _, train = job_for(launcher, module=SFT, gpus=8, kind="training")
    _, cpu_gen = job_for(launcher, module=GENERATION, gpus=0, kind="generation")
    assert container_of(gen1)["resources"] == {"limits": {"nvidia.com/gpu": "1", "memory": "64Gi"},
                                               "requests": {"cpu": "8", "memory": "64Gi"}}
    assert container_of(gen2)["resources"]["requests"] == {"cpu": "16", "memory": "128Gi"}
    assert container_of(train)["resources"] == {"limits": {"nvidia.com/gpu": "8", "memory": "800Gi"},
                                                "requests": {"cpu": "64", "memory": "800Gi"}}
    # A CPU launch asks for a CPU pod: no GPU, no GPU node selector or toleration.
    pod = cpu_gen["spec"]["template"]["spec"]
    assert container_of(cpu_gen)["resources"] == {"limits": {"memory": "16Gi"}, "requests": {"cpu": "4", "memory": "16Gi"}}
    assert "nodeSelector" not in pod and "tolerations" not in pod
    shm = {v["name"]: v for v in gen1["spec"]["template"]["spec"]["volumes"]}["dshm"]["emptyDir"]["sizeLimit"]
    assert shm == "16Gi"


def test_sizing_and_image_are_configurable_per_kind():
    launcher = production_launcher(
        training={"cpu_per_gpu": "1", "memory_per_gpu": "3Gi", "shm_size": "1Gi"},
        generation={"image": "registry/valley-generation:abc", "cpu": "2", "memory": "6Gi"})
    _, train = job_for(launcher, module=SFT, gpus=2, kind="training")
    _, gen = job_for(launcher, module=GENERATION, gpus=0, kind="generation")
    assert container_of(train)["resources"]["requests"] == {"cpu": "2", "memory": "6Gi"}
    assert container_of(train)["image"] == launcher.image != "registry/valley-generation:abc"
    assert container_of(gen)["image"] == "registry/valley-generation:abc"
    assert container_of(gen)["resources"]["requests"] == {"cpu": "2", "memory": "6Gi"}


def test_production_generation_jobs_run_the_vllm_image():
    launcher = production_launcher()
    _, gen = job_for(launcher, module=GENERATION, gpus=1, kind="generation")
    _, train = job_for(launcher, module=SFT, gpus=8, kind="training")
    assert container_of(gen)["image"].split(":")[0].endswith("valley-generation")
    assert container_of(train)["image"] == launcher.image


def test_bad_quantities_are_named_in_the_profile():
    with pytest.raises(ValueError, match="memory_per_gpu: '100 GB'"):
        production_launcher(training={"memory_per_gpu": "100 GB"})


@pytest.mark.parametrize("value, factor, expected", [("100Gi", 8, "800Gi"), ("8", 2, "16"), ("1.5", 3, "4.5"),
                                                     ("500m", 3, "1500m"), ("0.25Gi", 4, "1Gi")])
def test_scale_quantity(value, factor, expected):
    assert scale_quantity(value, factor) == expected


# --- the CPU rehearsal shape: 2 pods x 1 rank ------------------------------------------------------------------------
def rehearsal_launcher(**overrides) -> KubernetesJobLauncher:
    return production_launcher(gpus_per_node=1, checkpoint_pvc="valley-checkpoints", **overrides)


def test_two_nodes_of_one_rank_make_a_static_rendezvous():
    spec, job = job_for(rehearsal_launcher(), module=SFT, gpus=2, kind="training")
    command = container_of(job)["command"]
    flag = {command[i]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--")}
    assert flag["--num_machines"] == "2" and flag["--num_processes"] == "2"  # total processes over both pods
    assert flag["--machine_rank"] == "$(NODE_RANK)"
    assert flag["--main_process_ip"] == "$(MASTER_ADDR)" and flag["--main_process_port"] == "$(MASTER_PORT)"
    assert flag["--rdzv_backend"] == "static"
    assert flag["--config_file"] == "valley_assets/training/accelerate/fsdp2.yaml"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    env = {e["name"]: e for e in container_of(job)["env"]}
    assert env["MASTER_ADDR"]["value"] == f"{spec.name}-0.{spec.name}" and env["MASTER_PORT"]["value"] == "29500"
    assert env["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']")
    assert env["VALLEY_STAGING_DIR"]["value"] == "/checkpoints/staging"
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["checkpoints"]["persistentVolumeClaim"]["claimName"] == "valley-checkpoints"
    assert container_of(job)["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_two_nodes_still_need_the_shared_checkpoint_volume():
    with pytest.raises(LaunchError, match="checkpoint_pvc"):
        production_launcher(gpus_per_node=1).job_spec(context(), module=SFT, gpus=2, name="sft", env={},
                                                      kind="training")


# --- Secrets: the hub token and object-store credentials ------------------------------------------------------------
def test_jobs_get_hf_token_and_the_env_secrets():
    launcher = production_launcher()
    for kind, module, gpus in (("training", SFT, 8), ("generation", GENERATION, 1)):
        _, job = job_for(launcher, module=module, gpus=gpus, kind=kind)
        container = container_of(job)
        env = {e["name"]: e for e in container["env"]}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": HF_TOKEN_KEY,
                                                                 "optional": False}
        assert container["envFrom"] == [{"secretRef": {"name": "valley-object-store", "optional": False}}]
        assert job["spec"]["template"]["spec"]["serviceAccountName"] == "valley-runner"


def test_no_env_secrets_means_no_env_from():
    _, job = job_for(production_launcher(env_from_secrets=[]), module=SFT, gpus=8, kind="training")
    assert "envFrom" not in container_of(job)


# --- the evaluation's own GPU count ---------------------------------------------------------------------------------
class RecordingLauncher:
    def __init__(self):
        self.launches = []

    def run(self, context, *, module, params, gpus=0, name, kind="training"):
        self.launches.append({"module": module, "gpus": gpus, "kind": kind})
        return {}


@pytest.mark.parametrize("backend, tp, evaluation_gpus, expected", [
    ("transformers", 1, None, 0), ("transformers", 1, 1, 1), ("vllm", 2, None, 2), ("vllm", 4, 4, 4)])
def test_generation_gpus_come_from_the_evaluation_settings(tmp_path, backend, tp, evaluation_gpus, expected):
    """Issue K: generate() took min(launch.training_gpus, 1) for transformers."""
    from valley_assets.defs.common import layout_for
    from valley_assets.defs.evaluation import generate

    launch = {"training_gpus": 8} | ({} if evaluation_gpus is None else {"evaluation_gpus": evaluation_gpus})
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={
        "storage_root": str(tmp_path), "launch": launch,
        "evaluation": {"backend": backend, "tensor_parallel_size": tp}})
    launcher = RecordingLauncher()
    generate(SimpleNamespace(), evaluation=cfg.evaluation, launch=cfg.launch, launcher=launcher, layout=layout_for(cfg),
             model="m", student="s", data_size="1k", arm="main", release="r")
    assert launcher.launches == [{"module": GENERATION, "gpus": expected, "kind": "generation"}]


@pytest.mark.parametrize("evaluation, launch, message", [
    ({"backend": "vllm", "tensor_parallel_size": 2}, {"evaluation_gpus": 1}, "tensor_parallel_size=2"),
    ({"backend": "transformers"}, {"evaluation_gpus": 2}, "one device")])
def test_inconsistent_evaluation_gpus_are_refused(evaluation, launch, message):
    with pytest.raises(ValueError, match=message):
        load_study_config(PROFILES_DIR / "demo.yaml", overrides={"evaluation": evaluation, "launch": launch})


# --- talking to an API server through a kube config -----------------------------------------------------------------
def test_kubeconfig_file_points_the_clients_at_its_server(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("""
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "http://127.0.0.1:18443"}}]
users: [{name: me, user: {token: abc}}]
contexts: [{name: local, context: {cluster: local, user: me, namespace: valley}}]
current-context: local
""")
    api = KubernetesJobLauncher(image="img", in_cluster=False, kubeconfig_file=str(kubeconfig)).api()
    assert api.batch.api_client.configuration.host == "http://127.0.0.1:18443"
    assert api.core.api_client is api.batch.api_client
    other = KubernetesJobLauncher(image="img", in_cluster=False, kubeconfig_file=str(kubeconfig)).api()
    assert other.batch.api_client is not api.batch.api_client  # no shared global client between launchers


def test_dagster_rebuilds_the_launcher_with_its_kind_settings():
    """The resource goes through Dagster's config system (nested per-kind settings included)."""
    launcher = production_launcher(generation={"image": "g:1"})
    seen = {}

    @dg.asset(required_resource_keys={"launcher"})
    def probe(context):
        seen["image"] = context.resources.launcher.resources_for("generation")["image"]

    assert dg.materialize([probe], resources={"launcher": launcher}).success
    assert seen["image"] == "g:1"


def test_in_cluster_reads_the_pods_service_account(tmp_path, monkeypatch):
    """A run pod in the cluster: the API address from the service env, the ServiceAccount's token and CA."""
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    api = KubernetesJobLauncher(image="img").api()  # in_cluster is the default
    configuration = api.batch.api_client.configuration
    assert configuration.host == "https://10.0.0.1:443"
    assert configuration.auth_settings()["BearerToken"]["value"] == "bearer sa-token"


# --- grading Jobs (valley_assets/grading/kubernetes_backend.py) ----------------------------------------------------
def test_grading_job_is_hardened_and_validates_strictly():
    """The production profile's grading Job, built by the one Job builder, with every hardening the issue names."""
    from valley_assets.grading.kubernetes_backend import (
        GRADER_ROLE,
        GRADER_ROLE_LABEL,
        KubernetesGradingSettings,
        build_grading_job,
    )

    cfg = load_study_config(PROFILES_DIR / "production.yaml")
    assert cfg.grading.backend == "kubernetes"
    settings = KubernetesGradingSettings(**cfg.grading.kubernetes.settings(cfg.launch.kubernetes))
    job = to_manifest(build_grading_job(settings, "valley-grade-0123456789", 5))
    validate(job)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 5
    assert spec["backoffLimit"] == settings.pod_retries * 5
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [3]
    # A pod whose sample left state its runner could not remove exits 76 to be replaced, without counting as a retry.
    assert rules[2]["action"] == "Ignore" and rules[2]["onExitCodes"]["values"] == [76]
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"][GRADER_ROLE_LABEL] == GRADER_ROLE
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert "serviceAccountName" not in pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] != 0
    assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["stdin"] is True and container["stdinOnce"] is True
    # No Secret, no cluster credentials, nothing but the completion index in the environment.
    assert "envFrom" not in container
    assert [e["name"] for e in container["env"]] == ["NODE_RANK"]
    assert all("secretKeyRef" not in (e.get("valueFrom") or {}) for e in container["env"])
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert limits == {"cpu": "1", "memory": "4Gi"} and requests == {"cpu": "1", "memory": "4Gi"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert mounts["/scratch"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert mounts["/tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Mi"}
    assert all(set(v) == {"name", "emptyDir"} for v in pod["volumes"])  # no Secret, PVC or hostPath volume


def test_job_spec_hardening_fields_leave_training_jobs_unchanged():
    """The fields grading Jobs added to JobSpec default to what training and generation Jobs had."""
    job = to_manifest(build_job(JobSpec(name="j", namespace="valley", image="i", command=["x"], nodes=2)))
    pod = job["spec"]["template"]["spec"]
    for key in ("runtimeClassName", "automountServiceAccountToken", "enableServiceLinks", "securityContext"):
        assert key not in pod
    assert "securityContext" not in pod["containers"][0] and "stdin" not in pod["containers"][0]
    assert job["spec"]["completions"] == 2
    with pytest.raises(LaunchError, match="completions"):
        build_job(JobSpec(name="j", namespace="valley", image="i", command=["x"], nodes=2, completions=3))
