"""The production profile, rehearsed: the whole graph of `valley_assets/profiles/rehearsal.yaml` (production.yaml at
rehearsal size) materialized through a deployed Dagster, and the real artefacts checked.

What stands in for the cluster (tests/rehearsal/*), and what runs unchanged:
- object storage: moto's S3 server; the study root, the hub folders and the students are `s3://valley-rehearsal/…`,
  reached through s3fs with the endpoint and credentials from the environment (run pods: the chart's envSecrets;
  Job pods: the `valley-object-store` Secret the launcher's envFrom names);
- the hub: folders in the real repo layouts of OCR2, TACO, APPS, CodeContests, Codeforces and LiveCodeBench
  (hub_fixtures.py), and two tiny students of the real chat-template families (students.py);
- Dagster: PostgreSQL storage, the code location served from the trainer image, webserver + daemon, every run in a
  container of the trainer image (DockerRunLauncher), launched as stage backfills (the UI's mutation);
- Kubernetes: the stand-in API server (kube_standin) that runs each Job's pods as Docker containers of the same
  image, Indexed, with the headless Service's DNS; the launcher talks to it through the kubernetes client.
- training: 2 pods x 1 CPU rank (gloo) through the production accelerate/FSDP2 config; one pod of the first SFT Job
  is disrupted (as a preemption does) once a durable checkpoint is on S3, and the Job is resumed from it.

Marker `rehearsal`. Needs Docker, PostgreSQL and the trainer image (`bash scripts/rehearsal_setup.sh` builds it
offline); with VALLEY_REQUIRE_REHEARSAL=1 (CI) a missing piece fails instead of skipping.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.rehearsal import driver
from tests.rehearsal.deployment import DagsterDeployment, PostgresServer, helm_pod_env, postgres_available
from valley_assets.launch.job_spec import job_name

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.rehearsal, pytest.mark.docker, pytest.mark.slow]

IMAGE = os.environ.get("VALLEY_TRAINER_IMAGE", "valley-trainer:rehearsal")
BUCKET = "valley-rehearsal"
NAMESPACE = "valley"
STUDENTS = ("qwen2.5-7b-instruct", "llama3.1-8b-instruct")
K8S_VERSIONS = ("1.30.0", "1.33.0")
HF_TOKEN = "hf_rehearsal_not_a_real_token"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
STAGE_TIMEOUT_S = 1500


def _unavailable(why: str):
    if os.environ.get("VALLEY_REQUIRE_REHEARSAL") == "1":
        pytest.fail(f"VALLEY_REQUIRE_REHEARSAL=1 but the rehearsal cannot run: {why}")
    pytest.skip(why)


def _preconditions() -> None:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        _unavailable("no Docker engine answers (bash sandbox/ci_setup.sh starts one)")
    ok, why = postgres_available()
    if not ok:
        _unavailable(why)
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        _unavailable(f"the trainer image {IMAGE} is missing (bash docker/trainer/build_offline.sh)")


def upload_folder(fs, local: Path, remote: str) -> None:
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        fs.put_file(str(path), f"{remote}/{path.relative_to(local).as_posix()}")


@dataclass
class Rehearsal:
    deployment: DagsterDeployment
    kube: object
    s3: object
    fs: object
    disrupted: list[str] = field(default_factory=list)
    stage_wall_s: dict[str, float] = field(default_factory=dict)

    def study(self, *parts: str) -> str:
        return "/".join([f"{BUCKET}/study", *parts])


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    _preconditions()
    import s3fs

    from tests.rehearsal.hub_fixtures import write_hub_repos
    from tests.rehearsal.kube_standin import REHEARSAL_RUNTIME_CLASSES, KubeStandin
    from tests.rehearsal.moto_s3 import moto_server
    from tests.rehearsal.students import write_tiny_students
    from valley_assets.config import PROFILES_DIR, load_study_config

    root = tmp_path_factory.mktemp("rehearsal")
    with moto_server(host="0.0.0.0", bucket=BUCKET) as s3:
        fs = s3fs.S3FileSystem(key=s3.env["AWS_ACCESS_KEY_ID"], secret=s3.env["AWS_SECRET_ACCESS_KEY"],
                               client_kwargs={"endpoint_url": s3.endpoint_url, "region_name": "us-east-1"})
        # The hub and the students where the profile names them (s3://valley-rehearsal/hub/<owner>/<repo>).
        cfg = load_study_config(PROFILES_DIR / "rehearsal.yaml")
        targets = {key: getattr(cfg.data.hub, key) for key in ("ocr2", "taco", "apps", "code_contests", "codeforces")}
        targets["lcb"] = cfg.benchmark.lcb
        for key, folder in write_hub_repos(root / "hub").items():
            upload_folder(fs, Path(folder), targets[key].removeprefix("s3://"))
        for student, folder in write_tiny_students(root / "students").items():
            upload_folder(fs, Path(folder), cfg.student(student).model.removeprefix("s3://"))

        with KubeStandin(REHEARSAL_RUNTIME_CLASSES) as kube:  # grading pods name runtimeClassName gvisor
            # What an operator creates once per cluster (k8s/README.md, section 1): the hub token and the
            # object-store Secret. Job pods reach S3 as host.docker.internal; run pods share this machine's network.
            hf_token = {"HF_TOKEN": HF_TOKEN}
            kube.create_secret(NAMESPACE, "hf-token", hf_token)
            kube.create_secret(NAMESPACE, "valley-object-store", s3.env_for_host("host.docker.internal"))
            with PostgresServer() as pg:
                # The run pods' and the code location's env, built from the Helm values as the chart builds it.
                values = yaml.safe_load((REPO / "k8s" / "helm" / "dagster-values.yaml").read_text())
                location_env, run_env = helm_pod_env(
                    values, {"hf-token": hf_token, "valley-object-store": s3.env}, profile="rehearsal")
                # In-cluster config, as in a run pod: the API's address in the env, the ServiceAccount's token and
                # CA where the kubelet mounts them.
                location_env |= kube.in_cluster_env("127.0.0.1")
                run_env |= kube.in_cluster_env("127.0.0.1")
                volumes = {kube.service_account_dir(NAMESPACE): SERVICE_ACCOUNT_DIR,
                           # The host's engine socket and CLI: grading no longer uses them (grading.backend
                           # kubernetes: Jobs on this stand-in); kept until a rehearsal shows nothing else does.
                           "/var/run/docker.sock": "/var/run/docker.sock",
                           os.path.realpath(shutil.which("docker")): "/usr/local/bin/docker"}
                with DagsterDeployment(root / "dagster_home", image=IMAGE, pg_storage=pg.storage_config,
                                       location_env=location_env, run_env=run_env, volumes=volumes) as deployment:
                    yield Rehearsal(deployment=deployment, kube=kube, s3=s3, fs=fs)


def _disrupt_after_first_checkpoint(rh: Rehearsal, student: str, data_size: str) -> None:
    """Once a durable step checkpoint of this SFT run is on S3, disrupt its rank-1 pod (a preemption)."""
    if rh.disrupted:
        return
    steps = rh.study("checkpoints", student, data_size, "run", "_steps")
    rh.fs.invalidate_cache()
    try:
        done = [p for p in rh.fs.glob(f"{steps}/checkpoint-*/_COMPLETE")]
    except FileNotFoundError:
        done = []
    if not done:
        return
    stem = job_name(f"sft-{student}-{data_size}", "any").rsplit("-", 1)[0]  # the launcher's Job name, less its hash
    for pod in rh.kube.pods(NAMESPACE):
        name = pod["metadata"]["name"]
        labels = pod["metadata"].get("labels", {})
        running = (pod.get("status") or {}).get("phase") == "Running"
        job = labels.get("batch.kubernetes.io/job-name", "")
        if running and labels.get("batch.kubernetes.io/job-completion-index") == "1" and job.startswith(stem + "-"):
            rh.kube.disrupt(NAMESPACE, name)
            rh.disrupted.append(name)
            return


@pytest.fixture(scope="module")
def materialized(rehearsal):
    from valley_assets.study_runner import STAGES

    rh = rehearsal
    first_student = STUDENTS[0]
    for stage in STAGES:
        started = time.time()
        backfill = driver.launch_stage(rh.deployment, stage, title="+".join(stage))
        on_poll = (lambda: _disrupt_after_first_checkpoint(rh, first_student, "1k")) \
            if "sft_checkpoint" in stage else None
        driver.wait_backfill(rh.deployment, backfill, "+".join(stage), STAGE_TIMEOUT_S, on_poll=on_poll)
        rh.stage_wall_s["+".join(stage)] = round(time.time() - started, 1)
    print(json.dumps({"stage_wall_s": rh.stage_wall_s, "disrupted": rh.disrupted}, indent=1))
    return rh


def test_final_weights_on_s3_load_and_loss_went_down(materialized, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rh = materialized
    for student in STUDENTS:
        manifest = json.loads(rh.fs.cat_file(rh.study("checkpoints", student, "1k", "checkpoint.json")))
        assert manifest["model"].startswith(f"s3://{BUCKET}/study/checkpoints/{student}/1k/"), manifest["model"]
        local = tmp_path / student
        rh.fs.get(manifest["model"].removeprefix("s3://"), str(local), recursive=True)
        model = AutoModelForCausalLM.from_pretrained(local)
        tokenizer = AutoTokenizer.from_pretrained(local)
        assert model.num_parameters() > 0 and tokenizer.chat_template
        curve = [point["loss"] for point in manifest["report"]["loss_curve"]]
        assert len(curve) >= 4, curve
        head, tail = curve[: len(curve) // 3], curve[-(len(curve) // 3):]
        assert sum(tail) / len(tail) < sum(head) / len(head), f"{student}: loss did not go down: {curve}"
        assert manifest["report"]["world_size"] == 2


def test_disrupted_run_resumed_from_its_step(materialized):
    rh = materialized
    assert rh.disrupted, "no pod was disrupted: the first SFT run finished before a durable checkpoint was seen"
    manifest = json.loads(rh.fs.cat_file(rh.study("checkpoints", STUDENTS[0], "1k", "checkpoint.json")))
    assert manifest["report"]["resumed_from_step"] > 0, manifest["report"]
    jobs = [j["metadata"]["name"] for j in rh.kube.received_of("Job")]
    assert any(name.endswith("-r1") for name in jobs), f"no restarted attempt among {jobs}"


def test_scores_exist_for_both_students(materialized):
    rh = materialized
    rh.fs.invalidate_cache()
    runs = rh.fs.glob(rh.study("scores", "runs", "*.parquet"))  # one file per scoring run (docs/architecture.md)
    assert runs, "no scores were written"
    scores = pl.concat([pl.read_parquet(io.BytesIO(rh.fs.cat_file(path))) for path in runs], how="diagonal_relaxed")
    pass1 = scores.filter((pl.col("metric") == "pass@1") & (pl.col("difficulty") == "all"))
    assert set(pass1["student"]) == set(STUDENTS), pass1
    for student in STUDENTS:
        sizes = set(pass1.filter(pl.col("student") == student)["data_size"])
        assert {"0", "1k"} <= sizes, (student, sizes)
    assert set(scores.filter(pl.col("arm") != "main")["arm"]) == {"easy", "hard", "correct", "incorrect"}


def test_every_job_validates_strictly(materialized):
    import kubernetes_validate

    rh = materialized
    received = [obj for obj in rh.kube.received if obj.get("kind") in ("Job", "Service")]
    assert any(obj["kind"] == "Job" for obj in received)
    for obj in received:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
