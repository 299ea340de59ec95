"""The production profile materializes an `sft_checkpoint` partition by submitting a validated Kubernetes Job.

The real code location is loaded from `valley_assets/profiles/production.yaml` through `VALLEY_CONFIG` (storage root
moved to a tmp folder). Its `KubernetesJobLauncher` keeps every profile setting and only gets `api_factory` pointing
at `ProcessCluster`, which records the API calls and runs the submitted Job's rank-0 pod as a subprocess with the
manifest's env: the dagster-pipes context goes in through the env var exactly as it would to a pod, and the pod's
stderr (pipes messages) comes back as its log. Upstream assets are prepared as storage files; nothing touches the hub.
"""

import json
import sys
from pathlib import Path

import dagster as dg
import kubernetes_validate
import polars as pl
import pytest
import yaml
from k8s_double import API_FACTORY, ProcessCluster, install, step_failure_text

from valley_assets.config import PROFILES_DIR
from valley_assets.launch.kubernetes import KubernetesJobLauncher, to_manifest
from valley_assets.storage import StudyStorage

REPO = Path(__file__).resolve().parents[2]
K8S_VERSIONS = ("1.30.0", "1.33.0")
STUDENT = "qwen2.5-7b-instruct"
PARTITION = f"1k|{STUDENT}"


def write_upstream(storage: StudyStorage, n: int) -> None:
    """What training_problems and distill_subset[1k] would have written (the columns sft_checkpoint reads)."""
    problems = [{"question_id": f"q{i}", "question_content": f"Print the sum of the first {i + 2} integers.",
                 "starter_code": ""} for i in range(n)]
    storage.write_jsonl(problems, "problems", "training.jsonl")
    storage.write_parquet(pl.DataFrame({
        "id": [f"t{i}" for i in range(n)],
        "question_id": [p["question_id"] for p in problems],
        "question": [p["question_content"] for p in problems],
        "r1_generation": [f"<think>\nsum 1..{i + 2}\n</think>\n```python\nprint({(i + 2) * (i + 3) // 2})\n```"
                          for i in range(n)],
    }), "subsets", "1k.parquet")


@pytest.fixture()
def production(tmp_path, monkeypatch):
    raw = yaml.safe_load((PROFILES_DIR / "production.yaml").read_text())
    raw["storage_root"] = str(tmp_path / "study")
    config = tmp_path / "production.yaml"
    config.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("VALLEY_CONFIG", str(config))
    from valley_assets.config import load_study_config
    from valley_assets.definitions import build_definitions

    cfg = load_study_config()  # through VALLEY_CONFIG, as the deployed code location does
    return cfg, build_definitions()


def cluster_launcher(defs) -> KubernetesJobLauncher:
    """The profile's launcher with every setting kept; only the API clients (and the poll interval) differ."""
    launcher = defs.resources["launcher"]
    assert isinstance(launcher, KubernetesJobLauncher) and launcher.api_factory is None
    fields = {name: getattr(launcher, name) for name in KubernetesJobLauncher.model_fields}
    return KubernetesJobLauncher(**{**fields, "api_factory": API_FACTORY, "poll_interval_s": 0.05})


def materialize_partition(defs, cluster: ProcessCluster):
    """sft_checkpoint[1k|qwen2.5-7b-instruct] of the real code location against `cluster`; (result, run's logs)."""
    install(cluster)
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("data_size", ["1k"])
            result = dg.materialize([defs.get_assets_def("sft_checkpoint")], partition_key=PARTITION,
                                    resources={"launcher": cluster_launcher(defs)}, instance=instance,
                                    raise_on_error=False)
            return result, [entry.user_message for entry in instance.all_logs(result.run_id)]
    finally:
        cluster.close()


def pod_reports(lines: list[str]) -> list[dict]:
    """The pipes messages the simulated pod wrote, decoded."""
    return [m for m in (json.loads(line) for line in lines if line.startswith("{")) if "__dagster_pipes_version" in m]


def test_production_profile_submits_a_valid_job_and_records_the_pipes_report(production, tmp_path):
    cfg, defs = production
    storage = StudyStorage(cfg.resolved_storage_root())
    write_upstream(storage, n=3)
    cluster = ProcessCluster([sys.executable, "-m", "pod_program"],
                             extra_env={"PYTHONPATH": f"{REPO}:{Path(__file__).parent}", "OMP_NUM_THREADS": "1"})
    result, logs = materialize_partition(defs, cluster)
    pod_log = next(iter(cluster.lines.values()), [])
    assert result.success, "\n".join(pod_log[-20:])

    # One Job, no Service (one node), kept after success; the manifest validates strictly on both versions.
    [job] = cluster.jobs
    assert cluster.names("create_service") == [] and cluster.names("delete_job") == []
    manifest = to_manifest(job)
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    k = cfg.launch.kubernetes
    assert manifest["metadata"]["namespace"] == k.namespace and container["image"] == k.image
    assert pod["nodeSelector"] == k.node_selector and pod["serviceAccountName"] == k.service_account
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(cfg.launch.training_gpus)
    assert container["command"][:2] == ["accelerate", "launch"] and container["command"][-2:] == [
        "-m", "valley_assets.training.sft"]
    assert container["command"][container["command"].index("--num_processes") + 1] == "8"
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == k.hf_token_secret
    assert "DAGSTER_PIPES_CONTEXT" in env and "DAGSTER_PIPES_MESSAGES" in env
    labels = manifest["metadata"]["labels"]
    assert labels["valley.dev/asset-key"] == "sft_checkpoint"
    assert labels["valley.dev/partition"] == "1k_qwen2.5-7b-instruct"
    assert labels["dagster/run-id"] == result.run_id
    assert manifest["metadata"]["annotations"]["valley.dev/partition"] == PARTITION
    assert manifest["spec"]["podFailurePolicy"]["rules"][0]["action"] == "Ignore"  # one node retries in place

    # The pod got the asset's parameters through the pipes context and validated the training file it names.
    messages = pod_reports(pod_log)
    assert [m["method"] for m in messages][0] == "opened" and messages[-1]["method"] == "closed"
    [report] = [m for m in messages if m["method"] == "report_asset_materialization"]
    reported = {key: value["raw_value"] for key, value in report["params"]["metadata"].items()}
    assert reported["examples"] == 3 and reported["recipe"] == STUDENT and reported["base_model"] == cfg.student(
        STUDENT).model
    assert reported["world_size"] == 8 and reported["gradient_accumulation_steps"] == 16  # 128 = 1 x 16 x 8
    train_rows = storage.read_jsonl("checkpoints", STUDENT, "1k", "train.jsonl")
    assert len(train_rows) == 3 and train_rows[0]["messages"][-1]["role"] == "assistant"

    # The pipes log lines reached the run's event log, and the asset's metadata is what the pod reported.
    assert any(m and "step 5/5" in m for m in logs), logs[-20:]
    [mat] = result.asset_materializations_for_node("sft_checkpoint")
    meta = {key: value.value for key, value in mat.metadata.items()}
    for key in ("steps", "epochs", "final_loss", "train_loss_mean", "examples", "examples_dropped_too_long",
                "resumed_from_step", "world_size", "precision"):
        assert meta[key] == reported[key], key
    assert meta["loss_curve"] == reported["loss_curve"] and meta["steps"] == 5  # ceil(3 / 128) x 5 epochs
    output_dir = storage.uri("checkpoints", STUDENT, "1k", "run")
    assert meta["model"] == output_dir == reported["output_dir"]
    manifest_file = storage.read_json("checkpoints", STUDENT, "1k", "checkpoint.json")
    assert manifest_file["model"] == output_dir and manifest_file["report"]["steps"] == 5


def test_a_failing_pod_fails_the_partition_with_the_exit_code(production, tmp_path):
    """A pod whose program exits non-zero fails the partition with the controller's verdict, and writes nothing."""
    cfg, defs = production
    storage = StudyStorage(cfg.resolved_storage_root())
    write_upstream(storage, n=2)
    cluster = ProcessCluster([sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"])
    result, _ = materialize_partition(defs, cluster)
    assert not result.success
    text = step_failure_text(result)
    assert "LaunchError" in text and "exit code 3" in text and "matching FailJob rule at index 1" in text, text
    assert not storage.exists("checkpoints", STUDENT, "1k", "checkpoint.json")
