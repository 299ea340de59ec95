"""Everything in k8s/ is checked: manifests (and the kustomization's rendered output) validate strictly for Kubernetes
1.30 and 1.33, the Kubernetes objects inside the Dagster Helm values validate as the pods the chart makes of them,
the RBAC Role allows every call the launcher makes, and the node-pool configs match the launcher's scheduling."""

import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import kubernetes_validate
import pytest
import yaml

from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.launch.job_spec import (
    EKS_H100_NODE_SELECTOR,
    GKE_H100_NODE_SELECTOR,
    GPU_TOLERATION,
    build_job,
    to_manifest,
)

K8S = Path(__file__).resolve().parents[2] / "k8s"
K8S_VERSIONS = ("1.30.0", "1.33.0")
# Files in k8s/ that are not Kubernetes objects, and the test below that checks each.
NOT_MANIFESTS = {
    "kustomization.yaml": "test_kustomization_renders_to_valid_manifests",
    "helm/dagster-values.yaml": "test_helm_values_hold_valid_pod_pieces",
    "node-pools/eks-h100.eksctl.yaml": "test_node_pools_match_the_launcher",
    "node-pools/gke-h100.sh": "test_node_pools_match_the_launcher",
    "README.md": None,
}


def validate(manifest: dict) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.is_file() and str(p.relative_to(K8S)) not in NOT_MANIFESTS)


def test_every_file_in_k8s_is_checked():
    files = {str(p.relative_to(K8S)) for p in K8S.rglob("*") if p.is_file()}
    assert set(NOT_MANIFESTS) <= files, f"listed but missing: {set(NOT_MANIFESTS) - files}"
    assert all(p.suffix == ".yaml" for p in manifest_files()), "an unexpected file kind in k8s/: check it somewhere"


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifests_validate_strictly(path):
    objects = docs(path)
    assert objects, f"{path} holds no object"
    for obj in objects:
        validate(obj)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the kustomization")
def test_kustomization_renders_to_valid_manifests():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(str(p.relative_to(K8S)) for p in manifest_files())
    rendered = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True).stdout
    objects = [d for d in yaml.safe_load_all(rendered) if d]
    assert {o["kind"] for o in objects} == {"Namespace", "ServiceAccount", "Role", "RoleBinding",
                                            "PersistentVolumeClaim", "NetworkPolicy"}
    for obj in objects:
        validate(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == kustomization["namespace"]


def test_helm_values_hold_valid_pod_pieces():
    """No helm binary or chart offline, so the chart is not rendered; what the chart copies into pods is validated as
    the Pod it becomes, and the values point at the RBAC service account and the profile's image."""
    values = yaml.safe_load((K8S / "helm" / "dagster-values.yaml").read_text())
    run_config = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    run_secrets = values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    run_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dagster-run"},
               "spec": {**run_config["podSpecConfig"],
                        "containers": [{"name": "dagster", "image": "img", **run_config["containerConfig"],
                                        "envFrom": [{"secretRef": {"name": s["name"]}} for s in run_secrets]}]}}
    validate(run_pod)
    [deployment] = values["dagster-user-deployments"]["deployments"]
    code_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": deployment["name"]},
                "spec": {"containers": [{
                    "name": deployment["name"], "image": f"{deployment['image']['repository']}:{deployment['image']['tag']}",
                    "imagePullPolicy": deployment["image"]["pullPolicy"], "env": deployment["env"],
                    "envFrom": [{"secretRef": {"name": s["name"]}} for s in deployment["envSecrets"]],
                    "resources": deployment["resources"], "ports": [{"containerPort": deployment["port"]}]}]}}
    validate(code_pod)

    account = next(d for d in docs(K8S / "rbac.yaml") if d["kind"] == "ServiceAccount")["metadata"]["name"]
    assert run_config["podSpecConfig"]["serviceAccountName"] == account == values["serviceAccount"]["name"]
    profile = yaml.safe_load((PROFILES_DIR / "production.yaml").read_text())
    assert profile["launch"]["kubernetes"]["service_account"] == account
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    assert image == profile["launch"]["kubernetes"]["image"], "code location and trainer must be one image"
    assert {"name": "VALLEY_PROFILE", "value": "production"} in deployment["env"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher" and values["postgresql"]["enabled"] is True


# (API group, resource, verb) of every call KubernetesJobLauncher makes (see JobWatcher).
LAUNCHER_CALLS = [
    ("batch", "jobs", "create"), ("batch", "jobs/status", "get"), ("batch", "jobs", "delete"),
    ("", "pods", "list"), ("", "pods/log", "get"), ("", "services", "create"), ("", "services", "delete"),
]
# ... and of every call the kubernetes grading backend makes (valley_assets/grading/kubernetes_backend.py).
GRADING_CALLS = [
    ("batch", "jobs", "create"), ("batch", "jobs/status", "get"), ("batch", "jobs", "delete"),
    ("", "pods", "list"), ("", "pods/log", "get"), ("", "pods/attach", "create"), ("", "pods", "delete"),
]


def test_grader_network_policy_denies_all_traffic_of_the_grading_pods():
    from valley_assets.grading.kubernetes_backend import (
        GRADER_ROLE,
        GRADER_ROLE_LABEL,
        KubernetesGradingSettings,
        build_grading_job,
    )

    (policy,) = docs(K8S / "grader-networkpolicy.yaml")
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in policy["spec"] and "egress" not in policy["spec"]  # no rule: nothing allowed
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector == {GRADER_ROLE_LABEL: GRADER_ROLE}
    pod_labels = to_manifest(build_grading_job(KubernetesGradingSettings(), "grade-x", 2))["spec"]["template"][
        "metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in selector.items())


def test_rbac_allows_every_launcher_call():
    role = next(d for d in docs(K8S / "rbac.yaml") if d["kind"] == "Role")
    allowed = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    missing = [call for call in LAUNCHER_CALLS + GRADING_CALLS if call not in allowed]
    assert not missing, f"rbac.yaml's Role lacks {missing}"


def test_node_pools_match_the_launcher():
    eks = yaml.safe_load((K8S / "node-pools" / "eks-h100.eksctl.yaml").read_text())
    assert eks["apiVersion"].startswith("eksctl.io/") and eks["kind"] == "ClusterConfig"
    [group] = eks["managedNodeGroups"]
    assert {"node.kubernetes.io/instance-type": group["instanceType"]} == EKS_H100_NODE_SELECTOR
    assert any(t["key"] == GPU_TOLERATION["key"] and t["effect"] == GPU_TOLERATION["effect"] for t in group["taints"])
    gke = (K8S / "node-pools" / "gke-h100.sh").read_text()
    [(key, value)] = GKE_H100_NODE_SELECTOR.items()
    assert key == "cloud.google.com/gke-accelerator" and f"type={value}," in gke
    assert f"--node-taints {GPU_TOLERATION['key']}=present:{GPU_TOLERATION['effect']}" in gke
    assert subprocess.run(["bash", "-n", str(K8S / "node-pools" / "gke-h100.sh")]).returncode == 0


# --- Secrets: what the README tells users to create reaches every pod under the names the code reads --------------
README = K8S / "README.md"
OBJECT_STORE_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"}


def readme_secrets() -> dict[str, set[str]]:
    """{Secret name: its keys} of every `kubectl create secret generic NAME --from-literal=KEY=...` in k8s/README.md
    (continuation lines joined)."""
    text = README.read_text().replace("\\\n", " ")
    secrets = {}
    for line in text.splitlines():
        if "create secret generic" not in line:
            continue
        words = line.split()
        name = words[words.index("generic") + 1]
        secrets[name] = {w.split("=", 2)[1] for w in words if w.startswith("--from-literal=")}
    return secrets


def env_from(secret_names: list[str], secrets: dict[str, set[str]]) -> set[str]:
    """The variables an envFrom of these Secrets defines: one per key, named after the key."""
    missing = [name for name in secret_names if name not in secrets]
    assert not missing, f"pods read Secrets {missing} that k8s/README.md never tells users to create"
    return set().union(*(secrets[name] for name in secret_names))


def test_readme_secrets_reach_the_run_pods_and_the_code_location_as_hf_token_and_s3_env():
    """Defect 5: the Secret held the token under key `token`, so the Helm envFrom gave the run pods `token`."""
    secrets = readme_secrets()
    values = yaml.safe_load((K8S / "helm" / "dagster-values.yaml").read_text())
    run_secrets = [s["name"] for s in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]]
    [deployment] = values["dagster-user-deployments"]["deployments"]
    for where, names in (("run pods", run_secrets), ("code location", [s["name"] for s in deployment["envSecrets"]])):
        env = env_from(names, secrets)
        assert "HF_TOKEN" in env, f"{where} get {sorted(env)}, no HF_TOKEN"
        assert OBJECT_STORE_ENV <= env, f"{where} get {sorted(env)}"


def test_readme_secrets_reach_the_jobs_under_the_same_names():
    from valley_assets.resources import build_resources

    secrets = readme_secrets()
    launcher = build_resources(load_study_config(PROFILES_DIR / "production.yaml"))["launcher"]
    for kind, module, gpus in (("training", "valley_assets.training.sft", 8),
                               ("generation", "valley_assets.generation.run", 1)):
        spec = launcher.job_spec(SimpleNamespace(run_id="r"), module=module, gpus=gpus, name="x", env={}, kind=kind)
        [container] = to_manifest(build_job(spec))["spec"]["template"]["spec"]["containers"]
        names = {e["name"] for e in container["env"]}
        for e in container["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets.get(ref["name"], set()), f"{e['name']} reads {ref}: not in README"
        names |= env_from([f["secretRef"]["name"] for f in container.get("envFrom", [])], secrets)
        assert "HF_TOKEN" in names and OBJECT_STORE_ENV <= names, (kind, sorted(names))


def test_readme_documents_irsa_and_workload_identity_on_the_pods_service_account():
    text = README.read_text().replace("\\\n", " ")
    account = next(d for d in docs(K8S / "rbac.yaml") if d["kind"] == "ServiceAccount")["metadata"]["name"]
    for annotation in ("eks.amazonaws.com/role-arn=", "iam.gke.io/gcp-service-account="):
        [line] = [line for line in text.splitlines() if annotation in line]
        assert re.search(rf"kubectl -n valley annotate serviceaccount {account}\s+{re.escape(annotation)}", line), line
